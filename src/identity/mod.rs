//! Identity: users, organizations, memberships, invitations, API keys, and how callers authenticate.

pub mod auth;
pub mod graphql;
pub mod jwks;
pub mod repo;

use std::fmt;
use std::str::FromStr;

/// What a member or API key may do in an organization (DESIGN §4; the matrix is `policies/policy.csv`).
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Created the organization: everything, including billing and removing admins.
    Owner,
    /// Tenant admin: members (not owners), API keys, workspaces, plus all agent rights.
    Admin,
    /// Support agent: create, update, assign and comment tickets; read everything operational.
    Agent,
    /// Read-only member.
    Viewer,
    /// API key for analytics tools: registered persisted queries only.
    Analyst,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Agent,
        Role::Viewer,
        Role::Analyst,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
        }
    }

    /// Roles a person can hold through a membership (analyst is for API keys only).
    pub fn is_member_role(self) -> bool {
        !matches!(self, Role::Analyst)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown role {s:?}"))
    }
}
