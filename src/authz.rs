//! API-level authorization with casbin: may this role do this action on this kind of object?
//! The model and policy are `policies/model.conf` and `policies/policy.csv`, compiled into the binary
//! so a deployment cannot run with a policy other than the one its tests checked.

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};

use crate::error::{AppError, AppResult};
use crate::identity::Role;

pub const MODEL: &str = include_str!("../policies/model.conf");
pub const POLICY: &str = include_str!("../policies/policy.csv");

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
}

impl Object {
    pub fn as_str(self) -> &'static str {
        match self {
            Object::Organization => "organization",
            Object::Workspace => "workspace",
            Object::Ticket => "ticket",
            Object::Comment => "comment",
            Object::Member => "member",
            Object::Invitation => "invitation",
            Object::ApiKey => "api_key",
            Object::PersistedQuery => "persisted_query",
            Object::Credits => "credits",
            Object::Plan => "plan",
            Object::AuditLog => "audit_log",
        }
    }
}

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
