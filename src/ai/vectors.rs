//! Similar tickets. Qdrant cannot apply RLS, so (DESIGN §2 rule 7) every point carries `org_id` in its
//! payload, every search filters on it, and every hit is hydrated through PostgreSQL under the
//! caller's RLS context ([`hydrate`]), which drops anything a buggy or unfiltered search let through.
//! Without Qdrant, similar tickets come from PostgreSQL full-text search, under RLS as well.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::vector_output::Vector as VectorKind;
use qdrant_client::qdrant::{
    Condition, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder,
    Distance, FieldType, Filter, GetPointsBuilder, KeywordIndexParamsBuilder, PointId, PointStruct,
    PointsIdsList, Query, QueryPointsBuilder, SetPayloadPointsBuilder, UpsertPointsBuilder,
    VectorInput, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::json;
use uuid::Uuid;

use super::AiConfig;
use super::request::content_hash;
use crate::db::TenantTx;
use crate::error::AppResult;
use crate::error::DbContext as _;
use crate::support::TicketStatus;
use crate::support::repo::{TicketRow, tickets_by_ids};

/// A candidate from a vector search, before hydration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub ticket_id: Uuid,
    pub score: f32,
}

/// A similar ticket the caller may see.
#[derive(Debug, Clone)]
pub struct Similar {
    pub score: f64,
    pub ticket: TicketRow,
}

/// Ticket vectors in a Qdrant collection shared by all organizations (`org_id` is the tenant key),
/// one collection per embedding model and dimension ([`collection_name`]).
pub struct QdrantIndex {
    client: Qdrant,
    collection: String,
}

/// What Qdrant's payload says about a ticket (kept current when the ticket changes).
pub fn payload(org_id: Uuid, ticket: &TicketRow) -> serde_json::Value {
    json!({
        "org_id": org_id.to_string(),
        "ticket_id": ticket.id.to_string(),
        "workspace_id": ticket.workspace_id.to_string(),
        "status": ticket.status.as_str(),
    })
}

/// The payload stored with a freshly embedded vector: [`payload`] plus the `content_hash`
/// ([`content_hash`]) of the ticket version the vector was computed from, which tells a re-index
/// whether the point is current. Payload refreshes ([`QdrantIndex::update_payload`]) merge
/// [`payload`] only, so they never claim a version the vector was not computed from.
pub fn point_payload(org_id: Uuid, ticket: &TicketRow) -> serde_json::Value {
    let mut value = payload(org_id, ticket);
    value["content_hash"] = json!(content_hash(ticket));
    value
}

/// What a ticket's stored point says about it ([`QdrantIndex::stored`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub org_id: Option<String>,
    pub content_hash: Option<String>,
    pub workspace_id: Option<String>,
    pub status: Option<String>,
}

impl Stored {
    /// Whether the point holds `ticket`'s current text for `org_id` (its vector need not be computed
    /// again).
    pub fn is_current(&self, org_id: Uuid, ticket: &TicketRow) -> bool {
        self.org_id.as_deref() == Some(org_id.to_string().as_str())
            && self.content_hash.as_deref() == Some(content_hash(ticket).as_str())
    }

    /// Whether the point's status and workspace match the ticket's.
    pub fn payload_matches(&self, ticket: &TicketRow) -> bool {
        self.status.as_deref() == Some(ticket.status.as_str())
            && self.workspace_id.as_deref() == Some(ticket.workspace_id.to_string().as_str())
    }
}

/// `embedding_model` as it appears in a collection name: lowercase ASCII letters, digits and `_`
/// (every other character becomes `_`).
pub fn slug(embedding_model: &str) -> String {
    let slug: String = embedding_model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if slug.is_empty() {
        "model".to_owned()
    } else {
        slug
    }
}

/// The collection of vectors made by `embedding_model` with `dimensions` dimensions:
/// `{prefix}__{model slug}__{dimensions}` (`prefix` is `DESKGRAPH_QDRANT_COLLECTION`). Vectors of
/// another model or size live in another collection, so they are never compared with these.
pub fn collection_name(prefix: &str, embedding_model: &str, dimensions: usize) -> String {
    format!("{prefix}__{}__{dimensions}", slug(embedding_model))
}

fn point_uuid(id: &PointId) -> Option<Uuid> {
    use qdrant_client::qdrant::point_id::PointIdOptions;
    match id.point_id_options.as_ref()? {
        PointIdOptions::Uuid(s) => s.parse().ok(),
        PointIdOptions::Num(_) => None,
    }
}

fn to_payload(value: serde_json::Value) -> anyhow::Result<Payload> {
    Payload::try_from(value).map_err(|e| anyhow::anyhow!("invalid Qdrant payload: {e}"))
}

fn org_filter(org_id: Uuid, statuses: &[TicketStatus], exclude: Option<Uuid>) -> Filter {
    let mut must = vec![Condition::matches(
        "org_id",
        MatchValue::Keyword(org_id.to_string()),
    )];
    if !statuses.is_empty() {
        must.push(Condition::matches(
            "status",
            statuses
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect::<Vec<_>>(),
        ));
    }
    Filter {
        must,
        must_not: exclude
            .map(|id| vec![Condition::has_id([id.to_string()])])
            .unwrap_or_default(),
        ..Filter::default()
    }
}

impl QdrantIndex {
    /// A client of the collection for `embedding_model`'s `dimensions`-wide vectors
    /// ([`collection_name`] under `DESKGRAPH_QDRANT_COLLECTION`); [`QdrantIndex::ensure_collection`]
    /// creates it.
    pub async fn connect(
        cfg: &AiConfig,
        embedding_model: &str,
        dimensions: usize,
    ) -> anyhow::Result<Self> {
        let api_key =
            (!cfg.qdrant_api_key.is_empty()).then(|| cfg.qdrant_api_key.expose().to_owned());
        let client = Qdrant::from_url(&cfg.qdrant_url)
            .api_key(api_key)
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            // The check blocks a thread at start-up and prints to stdout; ensure_collection is ours.
            .skip_compatibility_check()
            .build()
            .with_context(|| format!("invalid QDRANT_URL {}", cfg.qdrant_url))?;
        Ok(Self {
            client,
            collection: collection_name(&cfg.qdrant_collection, embedding_model, dimensions),
        })
    }

    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Creates the collection (cosine distance, `dimensions` wide) and its payload indexes when
    /// missing: `org_id` as the tenant key, and `status`.
    pub async fn ensure_collection(&self, dimensions: usize) -> anyhow::Result<()> {
        let exists = self
            .client
            .collection_exists(&self.collection)
            .await
            .context("Qdrant is not reachable")?;
        if !exists {
            let created = self
                .client
                .create_collection(
                    CreateCollectionBuilder::new(&self.collection).vectors_config(
                        VectorParamsBuilder::new(dimensions as u64, Distance::Cosine),
                    ),
                )
                .await;
            // Another instance may have created it meanwhile.
            if let Err(err) = created
                && !self.client.collection_exists(&self.collection).await?
            {
                return Err(err).context("could not create the Qdrant collection");
            }
            tracing::info!(collection = %self.collection, dimensions, "created the Qdrant collection");
        }
        self.ensure_keyword_index("org_id", true).await?;
        self.ensure_keyword_index("status", false).await?;
        Ok(())
    }

    /// Creates a keyword payload index on `field` (marked as the tenant key when `tenant`) unless it
    /// exists. Instances starting at once race here, and Qdrant may answer a concurrent creation with
    /// an internal error: the loser looks again, and is done when the index is there by then (else
    /// it tries again, three times in all).
    async fn ensure_keyword_index(&self, field: &str, tenant: bool) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            if self.has_index(field).await? {
                return Ok(());
            }
            let mut index =
                CreateFieldIndexCollectionBuilder::new(&self.collection, field, FieldType::Keyword)
                    .wait(true);
            if tenant {
                index =
                    index.field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true));
            }
            match self.client.create_field_index(index).await {
                Ok(_) => return Ok(()),
                Err(err) if attempt >= 3 => {
                    if self.has_index(field).await? {
                        return Ok(());
                    }
                    return Err(err)
                        .with_context(|| format!("could not create the {field} payload index"));
                }
                Err(err) => {
                    tracing::debug!(field, error = %err, "creating a payload index failed; looking again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Whether the collection has a payload index on `field`.
    async fn has_index(&self, field: &str) -> anyhow::Result<bool> {
        let info = self
            .client
            .collection_info(&self.collection)
            .await
            .context("Qdrant is not reachable")?;
        Ok(info
            .result
            .is_some_and(|info| info.payload_schema.contains_key(field)))
    }

    /// Stores (or replaces) a ticket's vector and payload; the point id is the ticket id.
    pub async fn upsert(
        &self,
        org_id: Uuid,
        ticket: &TicketRow,
        vector: Vec<f32>,
    ) -> anyhow::Result<()> {
        self.upsert_many(org_id, vec![(ticket, vector)]).await
    }

    /// [`QdrantIndex::upsert`] for many tickets in one request.
    pub async fn upsert_many(
        &self,
        org_id: Uuid,
        tickets: Vec<(&TicketRow, Vec<f32>)>,
    ) -> anyhow::Result<()> {
        if tickets.is_empty() {
            return Ok(());
        }
        let points = tickets
            .into_iter()
            .map(|(ticket, vector)| {
                Ok(PointStruct::new(
                    ticket.id.to_string(),
                    vector,
                    to_payload(point_payload(org_id, ticket))?,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.client
            .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
            .await?;
        Ok(())
    }

    /// The stored payloads of the points among `ticket_ids` (tickets with no point are absent).
    pub async fn stored(&self, ticket_ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, Stored>> {
        if ticket_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<PointId> = ticket_ids.iter().map(|id| id.to_string().into()).collect();
        let response = self
            .client
            .get_points(
                GetPointsBuilder::new(&self.collection, ids)
                    .with_payload(true)
                    .with_vectors(false),
            )
            .await?;
        let text = |p: &HashMap<String, qdrant_client::qdrant::Value>, key: &str| {
            p.get(key).and_then(|v| v.as_str()).map(|s| s.to_owned())
        };
        Ok(response
            .result
            .into_iter()
            .filter_map(|p| {
                let id = point_uuid(p.id.as_ref()?)?;
                Some((
                    id,
                    Stored {
                        org_id: text(&p.payload, "org_id"),
                        content_hash: text(&p.payload, "content_hash"),
                        workspace_id: text(&p.payload, "workspace_id"),
                        status: text(&p.payload, "status"),
                    },
                ))
            })
            .collect())
    }

    /// Brings a stored point's payload up to date (status, workspace). A ticket with no point yet is
    /// left alone: its analysis stores one.
    pub async fn update_payload(&self, org_id: Uuid, ticket: &TicketRow) -> anyhow::Result<()> {
        self.client
            .set_payload(
                SetPayloadPointsBuilder::new(
                    &self.collection,
                    to_payload(payload(org_id, ticket))?,
                )
                .points_selector(PointsIdsList {
                    ids: vec![ticket.id.to_string().into()],
                })
                .wait(true),
            )
            .await?;
        Ok(())
    }

    pub async fn delete(&self, ticket_id: Uuid) -> anyhow::Result<()> {
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(PointsIdsList {
                        ids: vec![ticket_id.to_string().into()],
                    })
                    .wait(true),
            )
            .await?;
        Ok(())
    }

    /// Nearest tickets of `org_id` to `ticket_id`'s stored vector (excluding itself), or `None` when
    /// the ticket has no vector yet.
    pub async fn nearest(
        &self,
        org_id: Uuid,
        ticket_id: Uuid,
        statuses: &[TicketStatus],
        limit: u64,
    ) -> anyhow::Result<Option<Vec<Hit>>> {
        let query = QueryPointsBuilder::new(&self.collection)
            .query(Query::new_nearest(VectorInput::new_id(
                ticket_id.to_string(),
            )))
            .filter(org_filter(org_id, statuses, Some(ticket_id)))
            .limit(limit)
            .with_payload(true);
        match self.client.query(query).await {
            Ok(response) => Ok(Some(hits(response.result))),
            // The ticket has no point yet ("No point with id … found").
            Err(QdrantError::ResponseError { status })
                if status.message().to_lowercase().contains("not found") =>
            {
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Nearest points to `vector` with whatever `filter` is given — the raw search, unfiltered when
    /// `filter` is `None`. Only tests call this, to prove that hydration drops other tenants' hits.
    pub async fn search_raw(
        &self,
        vector: Vec<f32>,
        filter: Option<Filter>,
        limit: u64,
    ) -> anyhow::Result<Vec<Hit>> {
        let mut query = QueryPointsBuilder::new(&self.collection)
            .query(Query::new_nearest(vector))
            .limit(limit)
            .with_payload(true);
        if let Some(filter) = filter {
            query = query.filter(filter);
        }
        Ok(hits(self.client.query(query).await?.result))
    }

    /// The vector stored for `ticket_id` (dense), or `None` when the ticket has no point.
    pub async fn vector_of(&self, ticket_id: Uuid) -> anyhow::Result<Option<Vec<f32>>> {
        let response = self
            .client
            .get_points(
                GetPointsBuilder::new(&self.collection, vec![ticket_id.to_string().into()])
                    .with_vectors(true)
                    .with_payload(false),
            )
            .await?;
        Ok(response
            .result
            .into_iter()
            .next()
            .and_then(|p| p.vectors?.get_vector())
            .and_then(|v| match v {
                VectorKind::Dense(dense) => Some(dense.data),
                _ => None,
            }))
    }
}

fn hits(points: Vec<qdrant_client::qdrant::ScoredPoint>) -> Vec<Hit> {
    points
        .into_iter()
        .filter_map(|p| {
            let id = p.payload.get("ticket_id")?.as_str()?.parse().ok()?;
            Some(Hit {
                ticket_id: id,
                score: p.score,
            })
        })
        .collect()
}

/// Loads hit tickets through PostgreSQL in the caller's transaction: RLS drops every ticket of another
/// organization (whatever the search returned), and the status filter is applied again on current
/// data (a payload may lag behind). Keeps the search's order; at most `limit`.
pub async fn hydrate(
    tx: &TenantTx,
    hits: &[Hit],
    statuses: &[TicketStatus],
    limit: usize,
) -> AppResult<Vec<Similar>> {
    let ids: Vec<Uuid> = hits.iter().map(|h| h.ticket_id).collect();
    let mut rows: HashMap<Uuid, TicketRow> = tickets_by_ids(tx, &ids)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    Ok(hits
        .iter()
        .filter_map(|h| {
            let ticket = rows.remove(&h.ticket_id)?;
            (statuses.is_empty() || statuses.contains(&ticket.status)).then_some(Similar {
                score: f64::from(h.score),
                ticket,
            })
        })
        .take(limit)
        .collect())
}

/// Similar tickets by PostgreSQL full-text search: the ticket's title and description words, OR-ed,
/// ranked by `ts_rank` (scaled to 0..1). Runs under the caller's RLS like every query.
pub async fn fulltext_hits(
    tx: &TenantTx,
    ticket_id: Uuid,
    statuses: &[TicketStatus],
    limit: i64,
) -> AppResult<Vec<Hit>> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let rows = tx
        .query(
            "with source as (
                 select nullif(replace(plainto_tsquery('english',
                            s.title || ' ' || left(s.description, 2000))::text, ' & ', ' | '), '')::tsquery as q
                   from tickets s where s.id = $1
             )
             select t.id, ts_rank(t.search, source.q) as rank
               from tickets t, source
              where source.q is not null and t.search @@ source.q and t.id <> $1
                and (cardinality($2::text[]) = 0 or t.status = any($2))
              order by rank desc, t.id
              limit $3",
            &[&ticket_id, &statuses, &limit],
        )
        .await
        .db_context("failed to find similar tickets by full-text search")?;
    rows.iter()
        .map(|r| {
            let rank: f32 = r.try_get("rank")?;
            Ok(Hit {
                ticket_id: r.try_get("id")?,
                score: rank / (rank + 0.1),
            })
        })
        .collect()
}
