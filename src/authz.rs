//! API-level authorization with casbin: may this role do this action on this kind of object?
//! The model and policy are `policies/model.conf` and `policies/policy.csv`, compiled into the binary
//! so a deployment cannot run with a policy other than the one its tests checked. [`Role`] is here, in
//! the platform layer, because the tenant context, the policy and every product module speak of it.

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};

use crate::error::{AppError, AppResult};
use crate::text_enum::text_enum;

pub const MODEL: &str = include_str!("../policies/model.conf");
pub const POLICY: &str = include_str!("../policies/policy.csv");

// In the platform layer because the tenant context, casbin and every module speak of it. (The doc
// comment below is the schema's description of `Role`.)
/// What a member or API key may do in an organization (DESIGN §4; the matrix is `policies/policy.csv`).
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Created the organization: everything, including billing and removing admins.
    Owner,
    /// Tenant admin: members (not owners), API keys, workspaces, plus all agent rights.
    Admin,
    /// Support agent: create, update, assign and comment tickets; read everything operational.
    Agent,
    /// Read-only member; internal notes are not shown to viewers.
    Viewer,
    /// API key for analytics tools: registered persisted queries only; no internal notes.
    Analyst,
}

text_enum!(Role, "role", {
    Owner => "owner",
    Admin => "admin",
    Agent => "agent",
    Viewer => "viewer",
    Analyst => "analyst",
});

impl Role {
    /// Roles a person can hold through a membership (analyst is for API keys only).
    pub fn is_member_role(self) -> bool {
        !matches!(self, Role::Analyst)
    }
}

/// Kinds of object the policy speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Organization,
    Workspace,
    Ticket,
    Comment,
    Member,
    Invitation,
    ApiKey,
    PersistedQuery,
    Credits,
    Plan,
    AuditLog,
    Analytics,
}

text_enum!(Object, "object", {
    Organization => "organization",
    Workspace => "workspace",
    Ticket => "ticket",
    Comment => "comment",
    Member => "member",
    Invitation => "invitation",
    ApiKey => "api_key",
    PersistedQuery => "persisted_query",
    Credits => "credits",
    Plan => "plan",
    AuditLog => "audit_log",
    Analytics => "analytics",
});

pub struct Authz {
    enforcer: Enforcer,
}

impl Authz {
    pub async fn new() -> anyhow::Result<Self> {
        let model = DefaultModel::from_str(MODEL).await?;
        let enforcer = Enforcer::new(model, StringAdapter::new(POLICY)).await?;
        Ok(Self { enforcer })
    }

    /// Whether `role` may do `action` on `object`.
    pub fn allows(&self, role: Role, object: Object, action: &str) -> bool {
        match self
            .enforcer
            .enforce((role.as_str(), object.as_str(), action))
        {
            Ok(allowed) => allowed,
            Err(err) => {
                tracing::error!(error = %err, "casbin enforce failed; denying");
                false
            }
        }
    }

    /// Fails with FORBIDDEN unless the caller has a role in the current organization that allows it.
    pub fn require(&self, role: Option<Role>, object: Object, action: &str) -> AppResult<Role> {
        let role = role.ok_or_else(|| {
            AppError::forbidden("this operation needs an organization: send the x-org-id header (or an org_id claim)")
        })?;
        if self.allows(role, object, action) {
            Ok(role)
        } else {
            Err(AppError::forbidden(format!(
                "the {role} role may not {action} {}",
                object.as_str().replace('_', " ")
            )))
        }
    }
}
