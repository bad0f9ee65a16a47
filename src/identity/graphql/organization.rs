//! Organizations (the tenants) and the caller's view of them: `viewer`, `organization`,
//! `organizations`, `createOrganization`.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::user::User;
use crate::authz::{Object as Obj, Role};
use crate::error::{AppError, AppResult};
use crate::graphql::{handle, session, text_field};
use crate::identity::repo;
use crate::identity::service::{self, OrganizationFollowUp};

/// An organization: the tenant. Everything else belongs to one.
#[derive(SimpleObject, Clone, Debug)]
pub struct Organization {
    pub id: ID,
    /// URL-friendly unique name (lowercase letters, digits and dashes).
    pub slug: String,
    pub name: String,
    /// The billing plan (`free` until plans arrive).
    pub plan: String,
    pub created_at: DateTime<Utc>,
}

impl From<repo::OrganizationRow> for Organization {
    fn from(row: repo::OrganizationRow) -> Self {
        Self {
            id: row.id.into(),
            slug: row.slug,
            name: row.name,
            plan: row.plan,
            created_at: row.created_at,
        }
    }
}

/// Who is calling, and as what.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The signed-in user; null for API keys.
    pub user: Option<User>,
    /// The organization this request acts in; null when none was chosen.
    pub organization: Option<Organization>,
    /// The caller's role in that organization.
    pub role: Option<Role>,
    /// The API key's id when the caller is an API key.
    pub api_key_id: Option<ID>,
}

#[derive(InputObject)]
pub struct CreateOrganizationInput {
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Unique URL name: 1 to 40 lowercase letters, digits or inner dashes.
    pub slug: String,
}

fn valid_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    (1..=40).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

#[derive(Default)]
pub struct OrganizationQuery;

#[Object]
impl OrganizationQuery {
    /// The caller: works with or without an organization chosen.
    async fn viewer(&self, ctx: &Context<'_>) -> AppResult<Viewer> {
        let s = session(ctx)?;
        let c = s.context();
        let user = match c.user_id {
            Some(id) => repo::users_by_ids(&s.tx, &[id])
                .await?
                .into_iter()
                .next()
                .map(User::from),
            None => None,
        };
        let organization = match c.org_id {
            Some(_) => repo::current_organization(&s.tx)
                .await?
                .map(Organization::from),
            None => None,
        };
        Ok(Viewer {
            user,
            organization,
            role: c.role,
            api_key_id: c.api_key_id.map(ID::from),
        })
    }

    /// The organization this request acts in.
    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Organization> {
        let s = session(ctx)?;
        s.require(Obj::Organization, "read")?;
        repo::current_organization(&s.tx)
            .await?
            .map(Organization::from)
            .ok_or(AppError::NotFound("organization"))
    }

    /// Organizations the caller belongs to (for an API key, its own).
    async fn organizations(&self, ctx: &Context<'_>) -> AppResult<Vec<Organization>> {
        let s = session(ctx)?;
        Ok(repo::my_organizations(&s.tx)
            .await?
            .into_iter()
            .map(Organization::from)
            .collect())
    }
}

#[derive(Default)]
pub struct OrganizationMutation;

#[Object]
impl OrganizationMutation {
    /// Creates an organization with the caller as its owner. Works without an organization chosen.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> AppResult<Organization> {
        let s = session(ctx)?;
        let user_id = s.user_id()?;
        let name = text_field("name", &input.name, 1, 100)?;
        let slug = input.slug.trim().to_owned();
        if !valid_slug(&slug) {
            return Err(AppError::invalid_field(
                "slug",
                "slug must be 1 to 40 lowercase letters, digits or dashes, not starting or ending with a dash",
            ));
        }
        let follow_up = handle::<&'static dyn OrganizationFollowUp>(ctx)?;
        let org = service::create_organization(&s.tx, *follow_up, user_id, &slug, &name).await?;
        Ok(org.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_database_rule() {
        for ok in ["acme", "a", "acme-2", "a1-b2"] {
            assert!(valid_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "-acme",
            "acme-",
            "Acme",
            "ac me",
            "acmé",
            &"a".repeat(41),
        ] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
