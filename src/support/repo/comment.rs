//! Comments: pages, counts per ticket, adding.

use crate::db::TenantTx;
use crate::error::DbContext as _;
use crate::error::{AppError, AppResult, on_constraint};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct CommentRow {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub author_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub body: String,
    pub internal: bool,
    pub created_at: DateTime<Utc>,
}

pub(super) const COMMENT_COLUMNS: &str =
    "c.id, c.ticket_id, c.author_id, c.api_key_id, c.body, c.internal, c.created_at";

impl CommentRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            ticket_id: row.try_get("ticket_id")?,
            author_id: row.try_get("author_id")?,
            api_key_id: row.try_get("api_key_id")?,
            body: row.try_get("body")?,
            internal: row.try_get("internal")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// The comments among `ids` the transaction may see (in no particular order).
pub async fn comments_by_ids(tx: &TenantTx, ids: &[Uuid]) -> AppResult<Vec<CommentRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("select {COMMENT_COLUMNS} from ticket_comments c where c.id = any($1)");
    tx.query(&sql, &[&ids])
        .await
        .db_context("failed to load comments by id")?
        .iter()
        .map(CommentRow::from_row)
        .collect()
}

/// A page of a ticket's comments, oldest first, after `(created_at, id)` when given.
pub async fn comments_page(
    tx: &TenantTx,
    ticket_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<CommentRow>> {
    let (time, id) = after.unzip();
    let sql = format!(
        "select {COMMENT_COLUMNS} from ticket_comments c
          where c.ticket_id = $1 and ($2::timestamptz is null or (c.created_at, c.id) > ($2, $3))
          order by c.created_at, c.id limit $4"
    );
    tx.query(&sql, &[&ticket_id, &time, &id, &limit])
        .await
        .db_context("failed to load a page of comments")?
        .iter()
        .map(CommentRow::from_row)
        .collect()
}

pub async fn comment_counts(tx: &TenantTx, ticket_ids: &[Uuid]) -> AppResult<Vec<(Uuid, i64)>> {
    let rows = tx
        .query(
            "select c.ticket_id, count(*) from ticket_comments c where c.ticket_id = any($1) group by c.ticket_id",
            &[&ticket_ids],
        )
        .await
        .db_context("failed to count comments")?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub async fn insert_comment(
    tx: &TenantTx,
    ticket_id: Uuid,
    author_id: Option<Uuid>,
    api_key_id: Option<Uuid>,
    body: &str,
    internal: bool,
) -> AppResult<CommentRow> {
    let sql = format!(
        "insert into ticket_comments as c (org_id, ticket_id, author_id, api_key_id, body, internal)
         values ((select app.current_org_id()), $1, $2, $3, $4, $5)
         returning {COMMENT_COLUMNS}"
    );
    let rows = tx
        .query_raw(
            &sql,
            &[&ticket_id, &author_id, &api_key_id, &body, &internal],
        )
        .await
        .and_then(|rows| {
            rows.map_err(|e| {
                on_constraint(e, |c| {
                    (c == "ticket_comments_ticket_fkey").then_some(AppError::NotFound("ticket"))
                })
            })
        })
        .db_context("failed to insert comment")?;
    rows.first()
        .map(CommentRow::from_row)
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("insert returned no row").into())
}
