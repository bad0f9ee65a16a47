//! Tickets: reading, filtered and ordered pages with keyset cursors, filing and updating.

use crate::db::TenantTx;
use crate::error::DbContext as _;
use crate::error::{AppError, AppResult, on_constraint};
use crate::graphql::pagination::Cursor;
use crate::support::{PrioritySource, TicketPriority, TicketStatus};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct TicketRow {
    pub id: Uuid,
    pub number: i64,
    pub workspace_id: Uuid,
    pub title: String,
    pub description: String,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub priority_source: PrioritySource,
    pub requester_email: Option<String>,
    pub assignee_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

pub(super) const TICKET_COLUMNS: &str = "t.id, t.number, t.workspace_id, t.title, t.description, t.status, t.priority, \
    t.priority_source, t.requester_email, t.assignee_id, t.created_by, t.created_at, t.updated_at, t.resolved_at";

impl TicketRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            number: row.try_get("number")?,
            workspace_id: row.try_get("workspace_id")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            status: row.try_get::<_, String>("status")?.parse()?,
            priority: row.try_get::<_, String>("priority")?.parse()?,
            priority_source: row.try_get::<_, String>("priority_source")?.parse()?,
            requester_email: row.try_get("requester_email")?,
            assignee_id: row.try_get("assignee_id")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            resolved_at: row.try_get("resolved_at")?,
        })
    }
}

/// The tickets among `ids` the transaction may see (in no particular order).
pub async fn tickets_by_ids(tx: &TenantTx, ids: &[Uuid]) -> AppResult<Vec<TicketRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("select {TICKET_COLUMNS} from tickets t where t.id = any($1)");
    tx.query(&sql, &[&ids])
        .await
        .db_context("failed to load tickets by id")?
        .iter()
        .map(TicketRow::from_row)
        .collect()
}

pub async fn ticket(tx: &TenantTx, id: Uuid) -> AppResult<Option<TicketRow>> {
    let sql = format!("select {TICKET_COLUMNS} from tickets t where t.id = $1");
    tx.query_opt(&sql, &[&id])
        .await
        .db_context("failed to load ticket")?
        .as_ref()
        .map(TicketRow::from_row)
        .transpose()
}

/// Filters of a ticket list (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct TicketQuery {
    pub workspace_id: Option<Uuid>,
    pub status: Option<TicketStatus>,
    pub priority: Option<TicketPriority>,
    pub assignee_id: Option<Uuid>,
    /// Web-search syntax over title and description (`"exact phrase"`, `or`, `-word`).
    pub search: Option<String>,
}

/// Sort orders; each is a keyset over `(expression, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TicketSort {
    #[default]
    CreatedAt,
    UpdatedAt,
    Number,
    Priority,
}

impl TicketSort {
    /// The SQL expression of the order. Constants, never user input.
    fn expression(self) -> &'static str {
        match self {
            Self::CreatedAt => "t.created_at",
            Self::UpdatedAt => "t.updated_at",
            Self::Number => "t.number",
            Self::Priority => "array_position(array['low','medium','high','critical'], t.priority)",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::CreatedAt => "c",
            Self::UpdatedAt => "u",
            Self::Number => "n",
            Self::Priority => "p",
        }
    }

    /// The cursor key of a row in this order: the order's tag and the row's value, so a cursor from a
    /// list in another order is refused instead of misread.
    pub fn cursor_key(self, t: &TicketRow) -> String {
        let value = match self {
            Self::CreatedAt => Cursor::at_time(t.created_at, t.id).key,
            Self::UpdatedAt => Cursor::at_time(t.updated_at, t.id).key,
            Self::Number => t.number.to_string(),
            Self::Priority => t.priority.rank().to_string(),
        };
        format!("{}:{value}", self.tag())
    }

    /// Parses a cursor key made by [`TicketSort::cursor_key`] for this order.
    pub fn parse_key(self, key: &str) -> AppResult<SortKey> {
        let invalid =
            || AppError::invalid_field("after", "after is not a cursor of a list in this order");
        let value = key
            .strip_prefix(self.tag())
            .and_then(|k| k.strip_prefix(':'))
            .ok_or_else(invalid)?;
        let time = || {
            Cursor {
                key: value.to_owned(),
                id: Uuid::nil(),
            }
            .time()
            .map_err(|_| invalid())
        };
        Ok(match self {
            Self::CreatedAt | Self::UpdatedAt => SortKey::Time(time()?),
            Self::Number => SortKey::Number(value.parse().map_err(|_| invalid())?),
            Self::Priority => SortKey::Rank(value.parse().map_err(|_| invalid())?),
        })
    }
}

/// A typed position in a ticket order (bound as a parameter of the order's own SQL type).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortKey {
    Time(DateTime<Utc>),
    Number(i64),
    Rank(i32),
}

pub(super) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

pub(super) fn push(params: &mut Params, value: impl ToSql + Sync + Send + 'static) -> String {
    params.push(Box::new(value));
    format!("${}", params.len())
}

pub(super) fn where_clause(filter: &TicketQuery, params: &mut Params) -> String {
    let mut sql = String::from(" where true");
    if let Some(ws) = filter.workspace_id {
        sql += &format!(" and t.workspace_id = {}", push(params, ws));
    }
    if let Some(status) = filter.status {
        sql += &format!(" and t.status = {}", push(params, status.as_str()));
    }
    if let Some(priority) = filter.priority {
        sql += &format!(" and t.priority = {}", push(params, priority.as_str()));
    }
    if let Some(assignee) = filter.assignee_id {
        sql += &format!(" and t.assignee_id = {}", push(params, assignee));
    }
    if let Some(search) = &filter.search {
        sql += &format!(
            " and t.search @@ websearch_to_tsquery('english', {})",
            push(params, search.clone())
        );
    }
    sql
}

pub(super) fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// One page of tickets (`limit` rows; ask for one more than the page to learn whether more follow).
pub async fn tickets_page(
    tx: &TenantTx,
    filter: &TicketQuery,
    sort: TicketSort,
    descending: bool,
    after: Option<(SortKey, Uuid)>,
    limit: i64,
) -> AppResult<Vec<TicketRow>> {
    let expr = sort.expression();
    let mut params = Params::new();
    let mut sql = format!("select {TICKET_COLUMNS} from tickets t");
    sql += &where_clause(filter, &mut params);
    let (cmp, dir) = if descending {
        ("<", "desc")
    } else {
        (">", "asc")
    };
    if let Some((key, id)) = after {
        let key = match key {
            SortKey::Time(t) => push(&mut params, t),
            SortKey::Number(n) => push(&mut params, n),
            SortKey::Rank(r) => push(&mut params, r),
        };
        let id = push(&mut params, id);
        sql += &format!(" and (({expr}), t.id) {cmp} ({key}, {id})");
    }
    let limit = push(&mut params, limit);
    sql += &format!(" order by ({expr}) {dir}, t.id {dir} limit {limit}");
    tx.query(&sql, &refs(&params))
        .await
        .db_context("failed to load a page of tickets")?
        .iter()
        .map(TicketRow::from_row)
        .collect()
}

pub async fn count_tickets(tx: &TenantTx, filter: &TicketQuery) -> AppResult<i64> {
    let mut params = Params::new();
    let sql = format!(
        "select count(*) from tickets t{}",
        where_clause(filter, &mut params)
    );
    Ok(tx
        .query_one(&sql, &refs(&params))
        .await
        .db_context("failed to count tickets")?
        .try_get(0)?)
}

pub struct NewTicket<'a> {
    pub workspace_id: Uuid,
    pub title: &'a str,
    pub description: &'a str,
    pub requester_email: Option<&'a str>,
    pub priority: TicketPriority,
    pub priority_source: PrioritySource,
    pub status: TicketStatus,
    pub assignee_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
}

pub(super) fn ticket_constraint(constraint: &str) -> Option<AppError> {
    match constraint {
        "tickets_workspace_fkey" => Some(AppError::NotFound("workspace")),
        "tickets_assignee_fkey" => Some(AppError::invalid_field(
            "assigneeId",
            "the assignee must be a member of this organization",
        )),
        _ => None,
    }
}

pub async fn insert_ticket(tx: &TenantTx, t: &NewTicket<'_>) -> AppResult<TicketRow> {
    let sql = format!(
        "insert into tickets as t (org_id, workspace_id, title, description, requester_email, priority, status,
                                  assignee_id, created_by, priority_source)
         values ((select app.current_org_id()), $1, $2, $3, $4, $5, $6, $7, $8, $9)
         returning {TICKET_COLUMNS}"
    );
    let rows = tx
        .query_raw(
            &sql,
            &[
                &t.workspace_id,
                &t.title,
                &t.description,
                &t.requester_email,
                &t.priority.as_str(),
                &t.status.as_str(),
                &t.assignee_id,
                &t.created_by,
                &t.priority_source.as_str(),
            ],
        )
        .await
        .and_then(|rows| rows.map_err(|e| on_constraint(e, ticket_constraint)))
        .db_context("failed to insert ticket")?;
    rows.first()
        .map(TicketRow::from_row)
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("insert returned no row").into())
}

/// Changes to a ticket; `None` leaves a field as it is. `assignee` is `Some(None)` to unassign.
#[derive(Debug, Default)]
pub struct TicketChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<TicketStatus>,
    pub priority: Option<TicketPriority>,
    pub assignee: Option<Option<Uuid>>,
}

pub async fn update_ticket(
    tx: &TenantTx,
    id: Uuid,
    c: &TicketChanges,
) -> AppResult<Option<TicketRow>> {
    let sql = format!(
        "update tickets t set
            title = coalesce($2, t.title),
            description = coalesce($3, t.description),
            status = coalesce($4, t.status),
            priority = coalesce($5, t.priority),
            -- a person chose the priority (even the one the AI had picked): the AI leaves it alone
            priority_source = case when $5 is not null then 'human' else t.priority_source end,
            assignee_id = case when $6 then $7 else t.assignee_id end
          where t.id = $1
          returning {TICKET_COLUMNS}"
    );
    let rows = tx
        .query_raw(
            &sql,
            &[
                &id,
                &c.title,
                &c.description,
                &c.status.map(TicketStatus::as_str),
                &c.priority.map(TicketPriority::as_str),
                &c.assignee.is_some(),
                &c.assignee.flatten(),
            ],
        )
        .await
        .and_then(|rows| rows.map_err(|e| on_constraint(e, ticket_constraint)))
        .db_context("failed to update ticket")?;
    rows.first().map(TicketRow::from_row).transpose()
}

/// Applies an AI-chosen priority unless a person chose the ticket's priority. True when applied.
pub async fn apply_ai_priority(
    tx: &TenantTx,
    id: Uuid,
    priority: TicketPriority,
) -> AppResult<bool> {
    let n = tx
        .execute(
            "update tickets t set priority = $2, priority_source = 'ai'
              where t.id = $1 and t.priority_source <> 'human'
                and (t.priority <> $2 or t.priority_source <> 'ai')",
            &[&id, &priority.as_str()],
        )
        .await
        .db_context("failed to apply the AI priority")?;
    Ok(n == 1)
}
