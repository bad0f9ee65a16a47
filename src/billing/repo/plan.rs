//! Plans: listing, the current one, changing it (with its allowance top-up), and which organizations are due their allowance.

use super::ledger::ensure_allowance;
use crate::db::TenantTx;
use crate::error::DbContext as _;
use crate::error::{AppError, AppResult, on_constraint};
use crate::identity::repo::{SEAT_LIMIT, no_free_seat};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub id: String,
    pub name: String,
    pub monthly_credits: i64,
    /// None: unlimited.
    pub seat_limit: Option<i32>,
}

pub(super) const PLAN_COLUMNS: &str = "p.id, p.name, p.monthly_credits, p.seat_limit";

impl PlanRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            monthly_credits: row.try_get("monthly_credits")?,
            seat_limit: row.try_get("seat_limit")?,
        })
    }
}

/// Every plan, cheapest first.
pub async fn plans(tx: &TenantTx) -> AppResult<Vec<PlanRow>> {
    let sql = format!("select {PLAN_COLUMNS} from plans p order by p.position, p.id");
    tx.query(&sql, &[])
        .await
        .db_context("failed to list plans")?
        .iter()
        .map(PlanRow::from_row)
        .collect()
}

/// The current organization's plan.
pub async fn current_plan(tx: &TenantTx) -> AppResult<Option<PlanRow>> {
    let sql = format!(
        "select {PLAN_COLUMNS} from organizations o join plans p on p.id = o.plan
          where o.id = (select app.current_org_id())"
    );
    tx.query_opt(&sql, &[])
        .await
        .db_context("failed to load the current plan")?
        .as_ref()
        .map(PlanRow::from_row)
        .transpose()
}

/// Moves the organization to `plan` (owners only; the database refuses others) and tops up this
/// month's allowance when the new plan's is larger. Fails when the plan has fewer seats than are used.
pub async fn change_plan(tx: &TenantTx, plan: &str) -> AppResult<PlanRow> {
    let updated = tx
        .query_raw(
            "update organizations set plan = $1 where id = (select app.current_org_id()) returning id",
            &[&plan],
        )
        .await
        .and_then(|rows| {
            rows.map_err(|e| {
                on_constraint(e, |c| match c {
                    "organizations_plan_fkey" => {
                        Some(AppError::invalid_field("plan", format!("unknown plan {plan:?}")))
                    }
                    SEAT_LIMIT => Some(no_free_seat()),
                    _ => None,
                })
            })
        })
        .db_context("failed to change plan")?;
    if updated.is_empty() {
        return Err(AppError::forbidden("only owners change the plan"));
    }
    ensure_allowance(tx).await?;
    current_plan(tx)
        .await?
        .ok_or_else(|| anyhow::anyhow!("organization has no plan").into())
}

/// Organizations still owed allowance this month, in id order after `after` (across organizations:
/// ids only).
pub async fn organizations_due_allowance(
    tx: &TenantTx,
    after: Option<Uuid>,
    limit: i32,
) -> AppResult<Vec<Uuid>> {
    tx.query(
        "select org_id from auth_private.organizations_due_allowance($1, $2)",
        &[&after, &limit],
    )
    .await
    .db_context("failed to list organizations due an allowance")?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}
