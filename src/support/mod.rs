//! The support desk: workspaces, tickets and comments.

pub mod graphql;
pub mod loaders;
pub mod repo;

use std::str::FromStr;

/// Where a ticket is in its life.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketStatus {
    /// Waiting for the support team.
    Open,
    /// Waiting for the requester or a third party.
    Pending,
    /// Solved; may be reopened.
    Resolved,
    /// Finished for good.
    Closed,
}

/// How urgent a ticket is.
#[derive(
    async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TicketPriority {
    Low,
    Medium,
    High,
    Critical,
}

/// Who chose a ticket's priority: the AI applies its priority only when no person did.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrioritySource {
    /// The default, not chosen by anyone.
    Default,
    /// A person chose it (when filing the ticket or later).
    Human,
    /// The ticket's AI analysis.
    Ai,
}

impl PrioritySource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Human => "human",
            Self::Ai => "ai",
        }
    }
}

impl FromStr for PrioritySource {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Default, Self::Human, Self::Ai]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown priority source {s:?}"))
    }
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }
}

impl FromStr for TicketStatus {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Open, Self::Pending, Self::Resolved, Self::Closed]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown ticket status {s:?}"))
    }
}

impl TicketPriority {
    /// 1 (low) to 4 (critical): the order of `orderBy: PRIORITY`.
    pub fn rank(self) -> i32 {
        match self {
            Self::Low => 1,
            Self::Medium => 2,
            Self::High => 3,
            Self::Critical => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl FromStr for TicketPriority {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Low, Self::Medium, Self::High, Self::Critical]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown ticket priority {s:?}"))
    }
}
