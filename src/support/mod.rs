//! The support desk: workspaces, tickets and comments.

pub mod events;
pub mod graphql;
pub mod loaders;
pub mod repo;
pub mod service;

use crate::text_enum::text_enum;

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

text_enum!(PrioritySource, "priority source", {
    Default => "default",
    Human => "human",
    Ai => "ai",
});

text_enum!(TicketStatus, "ticket status", {
    Open => "open",
    Pending => "pending",
    Resolved => "resolved",
    Closed => "closed",
});

text_enum!(TicketPriority, "ticket priority", {
    Low => "low",
    Medium => "medium",
    High => "high",
    Critical => "critical",
});

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
}
