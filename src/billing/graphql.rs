//! GraphQL for plans and credits: `plans`, `credits`, `grantCredits`, `changePlan`.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::authz::Object as Obj;
use crate::billing::LedgerKind;
use crate::billing::repo::{self, EntryRow, PlanRow};
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};
use crate::graphql::pagination::{self, Cursor, PageInfo};
use crate::graphql::{BigInt, session, text_field};
use crate::identity::graphql::Actor;

/// A billing plan.
#[derive(SimpleObject, Clone, Debug)]
pub struct Plan {
    /// `free`, `pro` or `enterprise`.
    pub id: ID,
    pub name: String,
    /// Credits granted at the start of each month.
    pub monthly_credits: BigInt,
    /// Members plus pending invitations allowed; null means unlimited.
    pub seat_limit: Option<i32>,
}

impl From<PlanRow> for Plan {
    fn from(row: PlanRow) -> Self {
        Self {
            id: row.id.into(),
            name: row.name,
            monthly_credits: row.monthly_credits.into(),
            seat_limit: row.seat_limit,
        }
    }
}

/// The organization's credits, which pay for AI work.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Credits {
    /// Credits available to spend.
    pub balance: BigInt,
    /// Credits reserved by work in progress (they return to the balance if the work fails).
    pub held: BigInt,
    pub plan: Plan,
}

#[ComplexObject]
impl Credits {
    /// Every movement of credits, newest first.
    #[graphql(complexity = "pagination::page_complexity(first, child_complexity)")]
    async fn ledger(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last entry of the previous page.")] after: Option<String>,
    ) -> AppResult<LedgerConnection> {
        let s = session(ctx)?;
        let limit = pagination::page_size(first)?;
        let after = Cursor::decode_time(after.as_deref())?;
        let rows = repo::ledger_page(&s.tx, after, limit + 1).await?;
        let (edges, page_info) = pagination::page(rows, limit, after.is_some(), |e| {
            Cursor::at_time(e.created_at, e.id)
        });
        Ok(LedgerConnection {
            edges: edges
                .into_iter()
                .map(|(cursor, e)| LedgerEdge {
                    cursor,
                    node: e.into(),
                })
                .collect(),
            page_info,
        })
    }
}

/// One movement of credits.
#[derive(SimpleObject, Clone, Debug)]
pub struct LedgerEntry {
    pub id: ID,
    pub kind: LedgerKind,
    /// Change to the available balance (negative for a HOLD, zero for a CAPTURE).
    pub amount: BigInt,
    /// Change to the held credits (positive for a HOLD, negative for a CAPTURE or RELEASE).
    pub held_change: BigInt,
    /// The balance right after this entry.
    pub balance_after: BigInt,
    /// The held credits right after this entry.
    pub held_after: BigInt,
    pub note: Option<String>,
    /// What the credits were for (e.g. `ticket:<id>`).
    pub reference: Option<String>,
    /// For a CAPTURE or RELEASE: the HOLD it settles.
    pub hold_id: Option<ID>,
    pub actor: Actor,
    /// The request that wrote it.
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<EntryRow> for LedgerEntry {
    fn from(e: EntryRow) -> Self {
        Self {
            id: e.id.into(),
            kind: e.kind,
            amount: e.amount.into(),
            held_change: e.held_change.into(),
            balance_after: e.balance_after.into(),
            held_after: e.held_after.into(),
            note: e.note,
            reference: e.reference,
            hold_id: e.hold_id.map(ID::from),
            actor: Actor::new(e.actor_user_id, e.actor_api_key_id, e.actor_role),
            request_id: e.request_id,
            created_at: e.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct LedgerEdge {
    pub cursor: String,
    pub node: LedgerEntry,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LedgerConnection {
    pub edges: Vec<LedgerEdge>,
    pub page_info: PageInfo,
}

#[ComplexObject]
impl LedgerConnection {
    /// Number of entries in the ledger.
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        repo::ledger_count(&session(ctx)?.tx).await
    }
}

/// The organization's credits as they are now in this transaction.
async fn credits(tx: &TenantTx) -> AppResult<Credits> {
    let (balance, plan) = tokio::try_join!(repo::balance(tx), repo::current_plan(tx))?;
    let plan = plan.ok_or(AppError::NotFound("organization"))?;
    Ok(Credits {
        balance: balance.balance.into(),
        held: balance.held.into(),
        plan: plan.into(),
    })
}

#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// The plans an organization can be on, cheapest first.
    async fn plans(&self, ctx: &Context<'_>) -> AppResult<Vec<Plan>> {
        let s = session(ctx)?;
        Ok(repo::plans(&s.tx)
            .await?
            .into_iter()
            .map(Plan::from)
            .collect())
    }

    /// The organization's credits, plan and ledger (members).
    async fn credits(&self, ctx: &Context<'_>) -> AppResult<Credits> {
        let s = session(ctx)?;
        s.require(Obj::Credits, "read")?;
        credits(&s.tx).await
    }
}

#[derive(InputObject)]
pub struct GrantCreditsInput {
    /// Credits to add, 1 to 10,000,000.
    pub amount: BigInt,
    /// Why (shown in the ledger), up to 500 characters.
    pub note: Option<String>,
    /// Your key for this grant, 1 to 100 characters. Sending the same key again returns the first
    /// result and grants nothing more, so a retry after a timeout is safe.
    pub idempotency_key: String,
}

/// Longest idempotency key a client may send.
const IDEMPOTENCY_KEY_MAX: usize = 100;

#[derive(Default)]
pub struct BillingMutation;

#[Object]
impl BillingMutation {
    /// Adds credits (owners and admins). Idempotent by `idempotencyKey`.
    async fn grant_credits(
        &self,
        ctx: &Context<'_>,
        input: GrantCreditsInput,
    ) -> AppResult<Credits> {
        let s = session(ctx)?;
        s.require(Obj::Credits, "grant")?;
        let key = text_field(
            "idempotencyKey",
            &input.idempotency_key,
            1,
            IDEMPOTENCY_KEY_MAX,
        )?;
        if key.chars().any(char::is_control) {
            return Err(AppError::invalid_field(
                "idempotencyKey",
                "idempotencyKey must not contain control characters",
            ));
        }
        let note = match input.note.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(note) => Some(text_field("note", note, 1, 500)?),
        };
        let posted = repo::grant(&s.tx, input.amount.0, note.as_deref(), &key).await?;
        if let repo::Posted::New(entry) = &posted {
            tracing::info!(
                amount = entry.amount,
                balance_after = entry.balance_after,
                "credits granted"
            );
            // Analyses that waited for credits get their turn.
            super::credits_added(&s.tx).await?;
        }
        credits(&s.tx).await
    }

    /// Moves the organization to another plan (owners). Fails when the plan has fewer seats than are
    /// in use; an upgrade tops this month's allowance up to the new plan's.
    async fn change_plan(&self, ctx: &Context<'_>, plan: ID) -> AppResult<Credits> {
        let s = session(ctx)?;
        s.require(Obj::Plan, "change")?;
        let plan = plan.trim();
        if plan.is_empty() || plan.len() > 50 {
            return Err(AppError::invalid_field("plan", "plan is not a plan id"));
        }
        repo::change_plan(&s.tx, plan).await?;
        super::credits_added(&s.tx).await?;
        credits(&s.tx).await
    }
}
