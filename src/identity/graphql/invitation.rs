//! Invitations: inviting by e-mail, revoking, and accepting with the one-time token.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::member::member_role;
use super::organization::Organization;
use super::user::{User, load_user};
use crate::authz::{Object as Obj, Role};
use crate::error::{AppError, AppResult};
use crate::graphql::{email_field, handle, parse_id, session};
use crate::identity::auth::{InvitationBinding, hash_secret, new_secret};
use crate::identity::repo;

/// Refusal of an invitation meant for someone else: names the invited address, masked, and why the
/// caller does not match it.
fn wrong_person(binding: &InvitationBinding, invited_email: &str) -> AppError {
    let invited = mask_email(invited_email);
    AppError::forbidden(match binding {
        InvitationBinding::Unverified => format!(
            "this invitation is for {invited}, and your identity provider has not verified your \
             e-mail address"
        ),
        InvitationBinding::NoEmail => {
            format!("this invitation is for {invited}, and your sign-in carries no e-mail address")
        }
        InvitationBinding::Email(_) | InvitationBinding::Off => format!(
            "this invitation is for {invited}; sign in with that e-mail address to accept it"
        ),
    })
}

/// `sam@initech.example` → `s***@initech.example`: enough for the right person to recognise the
/// address, not enough for anyone else to learn it.
fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Days an invitation stays valid.
const INVITATION_TTL_DAYS: i32 = 7;
const INVITATION_PREFIX: &str = "dginv_";

/// A pending invitation to join the organization.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Invitation {
    pub id: ID,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub invited_by: Option<Uuid>,
}

#[ComplexObject]
impl Invitation {
    /// The member who sent it.
    async fn invited_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        load_user(ctx, self.invited_by).await
    }
}

impl From<repo::InvitationRow> for Invitation {
    fn from(row: repo::InvitationRow) -> Self {
        Self {
            id: row.id.into(),
            email: row.email,
            role: row.role,
            expires_at: row.expires_at,
            accepted_at: row.accepted_at,
            created_at: row.created_at,
            invited_by: row.invited_by,
        }
    }
}

/// A new invitation and its one-time token: send the token to the invitee; it is not shown again.
#[derive(SimpleObject)]
pub struct CreatedInvitation {
    pub invitation: Invitation,
    pub token: String,
}

/// The membership an accepted invitation gave.
#[derive(SimpleObject)]
pub struct Membership {
    pub organization: Organization,
    pub role: Role,
}

#[derive(InputObject)]
pub struct InviteMemberInput {
    pub email: String,
    pub role: Role,
}

#[derive(Default)]
pub struct InvitationQuery;

#[Object]
impl InvitationQuery {
    /// Pending invitations (owners and admins).
    async fn invitations(&self, ctx: &Context<'_>) -> AppResult<Vec<Invitation>> {
        let s = session(ctx)?;
        s.require(Obj::Invitation, "read")?;
        Ok(repo::pending_invitations(&s.tx)
            .await?
            .into_iter()
            .map(Invitation::from)
            .collect())
    }
}

#[derive(Default)]
pub struct InvitationMutation;

#[Object]
impl InvitationMutation {
    /// Invites someone by e-mail. Returns a one-time token for them to accept with `acceptInvitation`.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        input: InviteMemberInput,
    ) -> AppResult<CreatedInvitation> {
        let s = session(ctx)?;
        s.require(Obj::Member, "invite")?;
        s.user_id()?; // people administer; API keys never do
        let role = member_role("role", input.role)?;
        if role == Role::Owner {
            s.require(Obj::Member, "manage_owner")?;
        }
        let email = email_field("email", &input.email)?;
        let token = new_secret(INVITATION_PREFIX);
        let c = s.context();
        let row = repo::insert_invitation(
            &s.tx,
            &email,
            role,
            &hash_secret(&token),
            c.user_id,
            INVITATION_TTL_DAYS,
        )
        .await?;
        Ok(CreatedInvitation {
            invitation: row.into(),
            token,
        })
    }

    /// Revokes a pending invitation: its token stops working and its seat is free again.
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> AppResult<Invitation> {
        let s = session(ctx)?;
        s.require(Obj::Invitation, "revoke")?;
        s.user_id()?; // people administer; API keys never do
        let id = parse_id("id", &id)?;
        if repo::pending_invitation_role(&s.tx, id).await? == Some(Role::Owner) {
            s.require(Obj::Member, "manage_owner")?;
        }
        repo::delete_invitation(&s.tx, id)
            .await?
            .map(Invitation::from)
            .ok_or(AppError::NotFound("invitation"))
    }

    /// Accepts an invitation for the signed-in user, who must be signed in with the invited e-mail
    /// address (unless the server does not bind invitations to e-mails). Works without an
    /// organization chosen.
    async fn accept_invitation(&self, ctx: &Context<'_>, token: String) -> AppResult<Membership> {
        let s = session(ctx)?;
        s.user_id()?; // invitations are accepted by people, for themselves
        let binding = handle::<InvitationBinding>(ctx)?;
        let token_hash = hash_secret(token.trim());
        let (org_id, role) =
            match repo::accept_invitation(&s.tx, &token_hash, binding.bound_email()).await? {
                repo::Acceptance::Accepted { org_id, role }
                | repo::Acceptance::AlreadyMember { org_id, role } => (org_id, role),
                repo::Acceptance::Expired => {
                    return Err(AppError::invalid_field(
                        "token",
                        "this invitation has expired; ask for a new one",
                    ));
                }
                repo::Acceptance::Invalid => return Err(AppError::NotFound("invitation")),
                repo::Acceptance::WrongPerson { invited_email } => {
                    return Err(wrong_person(binding, &invited_email));
                }
            };
        // The new membership makes the organization visible to its member.
        let org = repo::my_organizations(&s.tx)
            .await?
            .into_iter()
            .find(|o| o.id == org_id)
            .ok_or_else(|| anyhow::anyhow!("accepted organization is not visible"))?;
        Ok(Membership {
            organization: org.into(),
            role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::mask_email;

    #[test]
    fn masked_emails_keep_the_first_character_and_the_domain() {
        assert_eq!(mask_email("sam@initech.example"), "s***@initech.example");
        assert_eq!(mask_email("s@initech.example"), "s***@initech.example");
        assert_eq!(mask_email("émile@x.example"), "é***@x.example");
        assert_eq!(mask_email("no-at-sign"), "***");
    }
}
