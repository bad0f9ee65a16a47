//! `analytics`: every figure checked against truth computed here, independently, from the rows
//! themselves (read back with the superuser client): ticket volume and backlog per bucket in several
//! time zones and intervals, resolution and first-response statistics (percentile_cont recomputed in
//! Rust), breakdowns, AI and credit usage; the workspace filter; DST-crossing buckets with
//! hand-computed expectations; an empty window; every bad input; every role and the database's own
//! guard; and organizations that see none of each other.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Tz;
use deskgraph::authz::Role;
use deskgraph::db::Access;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::common::{
    Caller, OrgFixture, TestApp, big_int, error_code, org_fixture, persisted, send_raw, sql_state,
    trusted_tx,
};

const FIGURES: &str = r#"
query Figures($from: DateTime!, $to: DateTime!, $timeZone: String, $workspaceId: ID, $interval: AnalyticsInterval) {
  analytics(from: $from, to: $to, timeZone: $timeZone, workspaceId: $workspaceId) {
    ticketVolume(interval: $interval) { start created resolved openAtEnd }
    resolutionTime { count meanSeconds medianSeconds p90Seconds }
    firstResponseTime { count meanSeconds medianSeconds p90Seconds }
    byStatus: ticketsBy(dimension: STATUS) { key label count }
    byPriority: ticketsBy(dimension: PRIORITY) { key label count }
    byWorkspace: ticketsBy(dimension: WORKSPACE) { key label count }
    byAssignee: ticketsBy(dimension: ASSIGNEE) { key label count }
    byCategory: ticketsBy(dimension: CATEGORY) { key label count }
    bySentiment: ticketsBy(dimension: SENTIMENT) { key label count }
    byLanguage: ticketsBy(dimension: LANGUAGE) { key label count }
    aiUsage { analyses done failed creditsCharged promptTokens completionTokens }
    creditUsage(interval: $interval) { start charged added }
  }
}"#;

const DIMENSIONS: [(&str, &str); 7] = [
    ("byStatus", "STATUS"),
    ("byPriority", "PRIORITY"),
    ("byWorkspace", "WORKSPACE"),
    ("byAssignee", "ASSIGNEE"),
    ("byCategory", "CATEGORY"),
    ("bySentiment", "SENTIMENT"),
    ("byLanguage", "LANGUAGE"),
];

const INTERVALS: [&str; 4] = ["HOUR", "DAY", "WEEK", "MONTH"];

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

/// Variables for [`FIGURES`] (and the persisted `Dashboard`); `None` leaves a variable out.
fn vars(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: Option<&str>,
    ws: Option<Uuid>,
    interval: Option<&str>,
) -> Value {
    let mut v = json!({"from": rfc(from), "to": rfc(to)});
    if let Some(tz) = tz {
        v["timeZone"] = json!(tz);
    }
    if let Some(ws) = ws {
        v["workspaceId"] = json!(ws.to_string());
    }
    if let Some(i) = interval {
        v["interval"] = json!(i);
    }
    v
}

/// Runs `query` (expected to succeed) and returns `data.analytics`.
async fn figures(app: &TestApp, caller: &Caller, query: &str, variables: Value) -> Value {
    let (status, body) = app.post(caller, query, variables.clone()).await;
    assert_eq!(status, 200, "{variables}: {body}");
    assert!(body.get("errors").is_none(), "{variables}: {body}");
    body["data"]["analytics"].clone()
}

// ------------------------------------------------------------------------------------------------
// Deterministic randomness (SplitMix64).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % u64::try_from(hi - lo).unwrap()) as i64
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.range(0, xs.len() as i64) as usize]
    }

    fn chance(&mut self, percent: i64) -> bool {
        self.range(0, 100) < percent
    }
}

// ------------------------------------------------------------------------------------------------
// A tenant and its seeded history.

struct Tenant {
    fx: OrgFixture,
    /// The fixture's "Support" workspace and a second one, "Billing".
    ws: [Uuid; 2],
    /// Owner, admin, agent.
    members: [Uuid; 3],
    agent_key: Uuid,
}

async fn tenant(app: &TestApp, slug: &str) -> Tenant {
    let fx = org_fixture(app, slug).await;
    let ws2 = app
        .ok(
            &fx.admin,
            "mutation { createWorkspace(input: {name: \"Billing\"}) { id } }",
            json!({}),
        )
        .await["createWorkspace"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    Tenant {
        ws: [fx.workspace.parse().unwrap(), ws2],
        members: [
            fx.owner.user_id.unwrap(),
            fx.admin.user_id.unwrap(),
            fx.agent.user_id.unwrap(),
        ],
        agent_key: fx.agent_key_id.parse().unwrap(),
        fx,
    }
}

/// A superuser transaction in `org`'s context (the audit and lock triggers need it).
async fn org_tx(client: &mut tokio_postgres::Client, org: Uuid) -> tokio_postgres::Transaction<'_> {
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "select set_config('app.org_id', $1, true), set_config('app.role', 'owner', true)",
        &[&org.to_string()],
    )
    .await
    .unwrap();
    tx
}

/// Inserts a ticket; resolved/closed ones get `resolved_at` set later by [`backdate`].
#[allow(clippy::too_many_arguments)]
async fn insert_ticket(
    tx: &tokio_postgres::Transaction<'_>,
    org: Uuid,
    ws: Uuid,
    title: &str,
    status: &str,
    priority: &str,
    assignee: Option<Uuid>,
    created: DateTime<Utc>,
) -> Uuid {
    tx.query_one(
        "insert into tickets (org_id, workspace_id, title, status, priority, assignee_id, created_at)
         values ($1, $2, $3, $4, $5, $6, $7) returning id",
        &[&org, &ws, &title, &status, &priority, &assignee, &created],
    )
    .await
    .unwrap()
    .get(0)
}

async fn insert_comment(
    tx: &tokio_postgres::Transaction<'_>,
    org: Uuid,
    ticket: Uuid,
    author: Option<Uuid>,
    key: Option<Uuid>,
    internal: bool,
    created: DateTime<Utc>,
) {
    tx.execute(
        "insert into ticket_comments (org_id, ticket_id, author_id, api_key_id, body, internal, created_at)
         values ($1, $2, $3, $4, 'a reply', $5, $6)",
        &[&org, &ticket, &author, &key, &internal, &created],
    )
    .await
    .unwrap();
}

/// Inserts a ledger entry through the balance trigger; returns its id (none when the trigger skipped
/// it).
async fn insert_entry(
    tx: &tokio_postgres::Transaction<'_>,
    org: Uuid,
    kind: &str,
    amount: i64,
    held_change: i64,
    hold: Option<Uuid>,
    key: &str,
) -> Uuid {
    tx.query_one(
        "insert into credit_ledger (org_id, kind, amount, held_change, hold_id, idempotency_key, note)
         values ($1, $2, $3, $4, $5, $6, 'analytics seed') returning id",
        &[&org, &kind, &amount, &held_change, &hold, &key],
    )
    .await
    .unwrap_or_else(|e| panic!("ledger {kind} {amount}/{held_change}: {e}"))
    .get(0)
}

/// Sets the times triggers chose for us (`resolved_at` on resolution, ledger `created_at`), with the
/// triggers off for these statements only.
async fn backdate(
    tx: &tokio_postgres::Transaction<'_>,
    org: Uuid,
    resolved: &[(Uuid, DateTime<Utc>)],
    ledger: &[(Uuid, DateTime<Utc>)],
) {
    tx.batch_execute("set local session_replication_role = replica")
        .await
        .unwrap();
    for (id, t) in resolved {
        let n = tx
            .execute(
                "update tickets set resolved_at = $3 where org_id = $1 and id = $2",
                &[&org, id, t],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    for (id, t) in ledger {
        let n = tx
            .execute(
                "update credit_ledger set created_at = $3 where org_id = $1 and id = $2",
                &[&org, id, t],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    tx.batch_execute("set local session_replication_role = origin")
        .await
        .unwrap();
}

/// An analysis' category, sentiment, language, prompt and completion tokens, credits held and
/// charged.
type Outcome = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<i32>,
    Option<i32>,
    i64,
    i64,
);

const CATEGORIES: [&str; 6] = [
    "billing",
    "bug",
    "account",
    "feature_request",
    "how_to",
    "other",
];
const SENTIMENTS: [&str; 3] = ["negative", "neutral", "positive"];
const LANGUAGES: [&str; 5] = ["eng", "deu", "fra", "spa", "und"];
const PRIORITIES: [&str; 4] = ["low", "medium", "high", "critical"];

/// Seeds `n` random tickets around the window `[from, to)` plus hand-placed edge cases (created or
/// resolved exactly at `from`, `to` and bucket boundaries; first replies only internal, by a key, or
/// after `to`), with comments, analyses and ledger entries.
async fn seed(
    app: &TestApp,
    t: &Tenant,
    seed: u64,
    n: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let org = t.fx.id;
    let mut rng = Rng(seed);
    // One grant through the API (backdated below). Before any analysis exists: a grant wakes
    // analyses waiting for credits.
    let grant_key = format!("analytics-grant-{seed}");
    // Stored as `grant:{key}`.
    let stored_key = format!("grant:{grant_key}");
    app.ok(
        &t.fx.owner,
        "mutation($i: GrantCreditsInput!) { grantCredits(input: $i) { balance } }",
        json!({"i": {"amount": 500, "idempotencyKey": grant_key, "note": "seed"}}),
    )
    .await;

    let mut client = app.db.admin().await;
    let tx = org_tx(&mut client, org).await;
    let earlier: Vec<Uuid> = tx
        .query(
            "select id from credit_ledger where org_id = $1 and idempotency_key <> $2 order by created_at, id",
            &[&org, &stored_key],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let grant: Uuid = tx
        .query_one(
            "select id from credit_ledger where org_id = $1 and idempotency_key = $2",
            &[&org, &stored_key],
        )
        .await
        .unwrap()
        .get(0);

    let [owner, admin, agent] = t.members;
    let assignees = [None, Some(owner), Some(admin), Some(agent)];
    let key = t.agent_key;
    let mut resolved: Vec<(Uuid, DateTime<Utc>)> = vec![];
    let mut tickets: Vec<(Uuid, DateTime<Utc>)> = vec![];

    // Random tickets from 3 days before the window to 2 days after it.
    let span = (to - from).num_seconds();
    for i in 0..n {
        let created = from + secs(rng.range(-3 * 86_400, span + 2 * 86_400));
        let ws = *rng.pick(&t.ws);
        let priority = *rng.pick(&PRIORITIES);
        let assignee = *rng.pick(&assignees);
        let done = rng.chance(50);
        let status = if done {
            *rng.pick(&["resolved", "resolved", "closed"])
        } else {
            *rng.pick(&["open", "open", "pending"])
        };
        let id = insert_ticket(
            &tx,
            org,
            ws,
            &format!("ticket {i}"),
            status,
            priority,
            assignee,
            created,
        )
        .await;
        if done {
            let took = match rng.range(0, 10) {
                0..=2 => rng.range(300, 7_200),
                3..=7 => rng.range(7_200, 2 * 86_400),
                _ => rng.range(2 * 86_400, 10 * 86_400),
            };
            resolved.push((id, created + secs(took)));
        }
        tickets.push((id, created));
        // Comments: public by members, internal notes, by the API key, by the key with an author.
        for _ in 0..rng.range(0, 5) {
            let when = created + secs(rng.range(60, 3 * 86_400));
            match rng.range(0, 100) {
                0..=29 => insert_comment(&tx, org, id, Some(agent), None, false, when).await,
                30..=49 => insert_comment(&tx, org, id, Some(admin), None, false, when).await,
                50..=74 => insert_comment(&tx, org, id, Some(agent), None, true, when).await,
                75..=94 => insert_comment(&tx, org, id, None, Some(key), false, when).await,
                _ => insert_comment(&tx, org, id, Some(admin), Some(key), false, when).await,
            }
        }
    }

    // Edge cases.
    let midnight =
        |d: DateTime<Utc>| Utc.from_utc_datetime(&d.date_naive().and_hms_opt(0, 0, 0).unwrap());
    let ws = t.ws[0];
    let ws2 = t.ws[1];
    // Filed exactly at `from`; the first member reply comes after an internal note, a key's reply
    // and a reply by a key that names an author; resolved exactly at a day boundary.
    let e1 = insert_ticket(
        &tx,
        org,
        ws,
        "edge: at from",
        "resolved",
        "high",
        Some(agent),
        from,
    )
    .await;
    insert_comment(&tx, org, e1, Some(agent), None, true, from + secs(600)).await;
    insert_comment(&tx, org, e1, None, Some(key), false, from + secs(1_200)).await;
    insert_comment(
        &tx,
        org,
        e1,
        Some(admin),
        Some(key),
        false,
        from + secs(1_500),
    )
    .await;
    insert_comment(&tx, org, e1, Some(admin), None, false, from + secs(7_200)).await;
    resolved.push((e1, midnight(from) + Duration::days(3)));
    tickets.push((e1, from));
    // Filed before the window, answered inside it: not a first response of the window.
    let e2 = insert_ticket(
        &tx,
        org,
        ws2,
        "edge: before from",
        "open",
        "low",
        None,
        from - secs(7_200),
    )
    .await;
    insert_comment(&tx, org, e2, Some(agent), None, false, from + secs(3_600)).await;
    tickets.push((e2, from - secs(7_200)));
    // Filed just before `to`, answered after it: counted.
    let e3 = insert_ticket(
        &tx,
        org,
        ws,
        "edge: answered after to",
        "open",
        "medium",
        Some(admin),
        to - secs(1_800),
    )
    .await;
    insert_comment(&tx, org, e3, Some(agent), None, false, to + secs(18_000)).await;
    tickets.push((e3, to - secs(1_800)));
    // Filed exactly at `to`: outside.
    let e4 = insert_ticket(&tx, org, ws2, "edge: at to", "open", "critical", None, to).await;
    insert_comment(&tx, org, e4, Some(agent), None, false, to + secs(60)).await;
    tickets.push((e4, to));
    // Resolved exactly at `to`: not resolved in the window, still open at its end.
    let e5 = insert_ticket(
        &tx,
        org,
        ws,
        "edge: resolved at to",
        "resolved",
        "medium",
        Some(owner),
        from + Duration::days(1),
    )
    .await;
    resolved.push((e5, to));
    tickets.push((e5, from + Duration::days(1)));
    // Filed long before, resolved exactly at `from`: resolved in the window.
    let e6 = insert_ticket(
        &tx,
        org,
        ws2,
        "edge: resolved at from",
        "closed",
        "high",
        None,
        from - Duration::days(5),
    )
    .await;
    resolved.push((e6, from));
    tickets.push((e6, from - Duration::days(5)));
    // Filed a second before `from`, still pending.
    let e7 = insert_ticket(
        &tx,
        org,
        ws,
        "edge: second before from",
        "pending",
        "low",
        Some(agent),
        from - secs(1),
    )
    .await;
    tickets.push((e7, from - secs(1)));
    // Only an internal note and a key's reply: no first response.
    let e8c = from + Duration::days(2);
    let e8 = insert_ticket(
        &tx,
        org,
        ws2,
        "edge: no member reply",
        "resolved",
        "medium",
        None,
        e8c,
    )
    .await;
    insert_comment(&tx, org, e8, Some(admin), None, true, e8c + secs(60)).await;
    insert_comment(&tx, org, e8, None, Some(key), false, e8c + secs(120)).await;
    resolved.push((e8, e8c + secs(7 * 3_600)));
    tickets.push((e8, e8c));
    // Filed exactly at a day boundary.
    let e9c = midnight(from) + Duration::days(5);
    let e9 = insert_ticket(
        &tx,
        org,
        ws,
        "edge: at midnight",
        "closed",
        "critical",
        Some(admin),
        e9c,
    )
    .await;
    resolved.push((e9, e9c + secs(5_400)));
    tickets.push((e9, e9c));
    // A second before `to`.
    let e10 = insert_ticket(
        &tx,
        org,
        ws2,
        "edge: second before to",
        "open",
        "high",
        Some(owner),
        to - secs(1),
    )
    .await;
    tickets.push((e10, to - secs(1)));

    // Analyses: one to three per ticket for most tickets, a day apart (so "latest" is unambiguous).
    let mut analysis_at: Vec<(Uuid, DateTime<Utc>)> = vec![];
    for (ticket, created) in &tickets {
        if !rng.chance(70) {
            continue;
        }
        for j in 0..rng.range(1, 4) {
            analysis_at.push((
                *ticket,
                *created + Duration::days(j) + secs(rng.range(10, 80_000)),
            ));
        }
    }
    // Requested exactly at `from` and at `to`.
    analysis_at.push((e1, from));
    analysis_at.push((e3, to));
    for (ticket, when) in analysis_at {
        let status = match rng.range(0, 100) {
            0..=54 => "done",
            55..=74 => "failed",
            75..=84 => "pending",
            85..=89 => "running",
            _ => "insufficient_credits",
        };
        let (cat, sent, lang, pt, ct, held, charged): Outcome = match status {
            "done" => (
                Some(*rng.pick(&CATEGORIES)),
                Some(*rng.pick(&SENTIMENTS)),
                Some(*rng.pick(&LANGUAGES)),
                Some(rng.range(100, 2_000) as i32),
                Some(rng.range(20, 500) as i32),
                3,
                rng.range(1, 4),
            ),
            "failed" => {
                let tokens = rng.chance(50);
                (
                    None,
                    None,
                    None,
                    tokens.then(|| rng.range(100, 2_000) as i32),
                    tokens.then(|| rng.range(1, 50) as i32),
                    3,
                    rng.range(0, 2),
                )
            }
            "running" => (None, None, None, None, None, 3, 0),
            "pending" => (None, None, None, None, None, 3, 0),
            _ => (None, None, None, None, None, 0, 0),
        };
        let finished = matches!(status, "done" | "failed").then(|| when + secs(30));
        tx.execute(
            "insert into ticket_analyses (org_id, ticket_id, status, reason, content_hash, provider, model,
                 prompt_version, category, sentiment, language, prompt_tokens, completion_tokens,
                 credits_held, credits_charged, created_at, started_at, finished_at)
             values ($1, $2, $3, 'created', 'seed', 'builtin', 'seed-model', 'v1', $4, $5, $6, $7, $8,
                     $9, $10, $11, $11, $12)",
            &[&org, &ticket, &status, &cat, &sent, &lang, &pt, &ct, &held, &charged, &when, &finished],
        )
        .await
        .unwrap();
    }

    // Ledger: credits in, holds with captures and releases, around and at the window's edges.
    let mut ledger: Vec<(Uuid, DateTime<Utc>)> = vec![(grant, from + secs(3 * 3_600))];
    let k = |name: &str| format!("seed-{seed}-{name}");
    let adds: [(&str, i64, DateTime<Utc>); 8] = [
        ("GRANT", 100_000, from - Duration::days(2)),
        ("GRANT", 700, from),
        ("GRANT", 300, to),
        (
            "PURCHASE",
            2_000,
            from + Duration::days(1) + secs(4 * 3_600),
        ),
        ("PURCHASE", 1_500, to - secs(1)),
        ("REFUND", 50, from + Duration::days(5)),
        ("ADJUSTMENT", 30, from + Duration::days(6)),
        ("ADJUSTMENT", -20, from + Duration::days(7)),
    ];
    for (i, (kind, amount, when)) in adds.iter().enumerate() {
        let id = insert_entry(&tx, org, kind, *amount, 0, None, &k(&format!("add-{i}"))).await;
        ledger.push((id, *when));
    }
    for i in 0..25 {
        let when = from + secs(rng.range(-86_400, span + 86_400));
        let held = rng.range(3, 11);
        let hold = insert_entry(
            &tx,
            org,
            "HOLD",
            -held,
            held,
            None,
            &k(&format!("hold-{i}")),
        )
        .await;
        ledger.push((hold, when));
        let mut left = held;
        if rng.chance(75) {
            let c = rng.range(1, held + 1);
            let cap = insert_entry(
                &tx,
                org,
                "CAPTURE",
                0,
                -c,
                Some(hold),
                &k(&format!("capture-{i}")),
            )
            .await;
            ledger.push((cap, when + secs(rng.range(60, 7_200))));
            left -= c;
        }
        if left > 0 && rng.chance(60) {
            let rel = insert_entry(
                &tx,
                org,
                "RELEASE",
                left,
                -left,
                Some(hold),
                &k(&format!("release-{i}")),
            )
            .await;
            ledger.push((rel, when + secs(rng.range(7_200, 14_400))));
        }
    }
    // Whatever the organization had before (its allowance, holds of the fixture's ticket): inside.
    for (i, id) in earlier.iter().enumerate() {
        ledger.push((*id, from + Duration::days(2) + secs(3_600 * i as i64)));
    }
    backdate(&tx, org, &resolved, &ledger).await;
    // An allowance inside the window (written as stored, the trigger would date it this month).
    tx.batch_execute("set local session_replication_role = replica")
        .await
        .unwrap();
    tx.execute(
        "insert into credit_ledger (org_id, kind, amount, held_change, balance_after, held_after,
             idempotency_key, note, created_at)
         values ($1, 'ALLOWANCE', 1000, 0, 0, 0, $2, 'seeded allowance', $3)",
        &[
            &org,
            &k("allowance"),
            &(from + Duration::days(10) + secs(3_600)),
        ],
    )
    .await
    .unwrap();
    tx.batch_execute("set local session_replication_role = origin")
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

// ------------------------------------------------------------------------------------------------
// The rows, read back, and the truth computed from them.

struct TicketRow {
    id: Uuid,
    workspace: Uuid,
    status: String,
    priority: String,
    assignee: Option<Uuid>,
    created: DateTime<Utc>,
    resolved: Option<DateTime<Utc>>,
}

struct CommentRow {
    ticket: Uuid,
    author: Option<Uuid>,
    key: Option<Uuid>,
    internal: bool,
    created: DateTime<Utc>,
}

struct AnalysisRow {
    ticket: Uuid,
    status: String,
    category: Option<String>,
    sentiment: Option<String>,
    language: Option<String>,
    prompt_tokens: Option<i32>,
    completion_tokens: Option<i32>,
    charged: i64,
    created: DateTime<Utc>,
}

struct EntryRow {
    kind: String,
    amount: i64,
    held_change: i64,
    created: DateTime<Utc>,
}

struct Rows {
    tickets: Vec<TicketRow>,
    comments: Vec<CommentRow>,
    analyses: Vec<AnalysisRow>,
    ledger: Vec<EntryRow>,
    workspaces: HashMap<Uuid, String>,
    users: HashMap<Uuid, Option<String>>,
}

async fn read_rows(app: &TestApp, org: Uuid) -> Rows {
    let db = app.db.admin().await;
    let q = |sql: &'static str| {
        let db = &db;
        async move { db.query(sql, &[&org]).await.unwrap() }
    };
    let tickets = q(
        "select id, workspace_id, status, priority, assignee_id, created_at, resolved_at
                       from tickets where org_id = $1",
    )
    .await
    .iter()
    .map(|r| TicketRow {
        id: r.get(0),
        workspace: r.get(1),
        status: r.get(2),
        priority: r.get(3),
        assignee: r.get(4),
        created: r.get(5),
        resolved: r.get(6),
    })
    .collect();
    let comments = q(
        "select ticket_id, author_id, api_key_id, internal, created_at
                        from ticket_comments where org_id = $1",
    )
    .await
    .iter()
    .map(|r| CommentRow {
        ticket: r.get(0),
        author: r.get(1),
        key: r.get(2),
        internal: r.get(3),
        created: r.get(4),
    })
    .collect();
    let analyses = q(
        "select ticket_id, status, category, sentiment, language, prompt_tokens,
                             completion_tokens, credits_charged, created_at
                        from ticket_analyses where org_id = $1",
    )
    .await
    .iter()
    .map(|r| AnalysisRow {
        ticket: r.get(0),
        status: r.get(1),
        category: r.get(2),
        sentiment: r.get(3),
        language: r.get(4),
        prompt_tokens: r.get(5),
        completion_tokens: r.get(6),
        charged: r.get(7),
        created: r.get(8),
    })
    .collect();
    let ledger =
        q("select kind, amount, held_change, created_at from credit_ledger where org_id = $1")
            .await
            .iter()
            .map(|r| EntryRow {
                kind: r.get(0),
                amount: r.get(1),
                held_change: r.get(2),
                created: r.get(3),
            })
            .collect();
    let workspaces = q("select id, name from workspaces where org_id = $1")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let users = db
        .query("select id, name from users", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Rows {
        tickets,
        comments,
        analyses,
        ledger,
        workspaces,
        users,
    }
}

/// Bucket starts, computed independently: DAY/WEEK/MONTH from the local calendar date of `from`
/// (local midnight, Monday, 1st); HOUR by stripping the local minutes and seconds off `from` (the
/// boundary of the local clock hour that contains it), then 3,600 s steps.
fn bucket_starts(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: Tz,
    interval: &str,
) -> Vec<DateTime<Utc>> {
    let local = from.with_timezone(&tz);
    let mut out = vec![];
    if interval == "HOUR" {
        let mut start = from
            - secs(i64::from(local.minute() * 60 + local.second()))
            - Duration::nanoseconds(i64::from(local.nanosecond()));
        while start < to {
            out.push(start);
            start += Duration::hours(1);
        }
        return out;
    }
    let d = local.date_naive();
    let mut day: NaiveDate = match interval {
        "DAY" => d,
        "WEEK" => d - Duration::days(i64::from(d.weekday().num_days_from_monday())),
        "MONTH" => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap(),
        other => panic!("interval {other}"),
    };
    loop {
        let start = tz
            .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .with_timezone(&Utc);
        if start >= to {
            return out;
        }
        out.push(start);
        day = match interval {
            "DAY" => day + Duration::days(1),
            "WEEK" => day + Duration::days(7),
            _ => day.checked_add_months(chrono::Months::new(1)).unwrap(),
        };
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct StatsWant {
    count: i64,
    mean: Option<f64>,
    median: Option<f64>,
    p90: Option<f64>,
}

/// PostgreSQL's percentile_cont: position (n-1)·p in the sorted values, linear interpolation.
fn percentile_cont(sorted: &[f64], p: f64) -> f64 {
    let pos = (sorted.len() - 1) as f64 * p;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn stats_of(mut v: Vec<f64>) -> StatsWant {
    if v.is_empty() {
        return StatsWant {
            count: 0,
            mean: None,
            median: None,
            p90: None,
        };
    }
    v.sort_by(f64::total_cmp);
    StatsWant {
        count: v.len() as i64,
        mean: Some(v.iter().sum::<f64>() / v.len() as f64),
        median: Some(percentile_cont(&v, 0.5)),
        p90: Some(percentile_cont(&v, 0.9)),
    }
}

fn seconds_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap() as f64 / 1e6
}

/// Expected `(key, label, count)`; a label of `None` is only checked to be non-empty.
type Groups = Vec<(String, Option<String>, i64)>;

struct Want {
    volume: Vec<(DateTime<Utc>, i64, i64, i64)>,
    resolution: StatsWant,
    first_response: StatsWant,
    by: BTreeMap<&'static str, Groups>,
    ai: [i64; 6],
    credits: Vec<(DateTime<Utc>, i64, i64)>,
}

fn status_label(s: &str) -> &'static str {
    match s {
        "open" => "Open",
        "pending" => "Pending",
        "resolved" => "Resolved",
        "closed" => "Closed",
        "low" => "Low",
        "medium" => "Medium",
        "high" => "High",
        "critical" => "Critical",
        other => panic!("status or priority {other}"),
    }
}

fn ai_label(dimension: &str, key: &str) -> Option<&'static str> {
    Some(match (dimension, key) {
        ("CATEGORY", "billing") => "Billing",
        ("CATEGORY", "bug") => "Bug",
        ("CATEGORY", "account") => "Account",
        ("CATEGORY", "feature_request") => "Feature request",
        ("CATEGORY", "how_to") => "How to",
        ("CATEGORY", "other") => "Other",
        ("SENTIMENT", "negative") => "Negative",
        ("SENTIMENT", "neutral") => "Neutral",
        ("SENTIMENT", "positive") => "Positive",
        ("LANGUAGE", "eng") => "English",
        ("LANGUAGE", "deu") => "German",
        ("LANGUAGE", "fra") => "French",
        ("LANGUAGE", "spa") => "Spanish",
        _ => return None,
    })
}

fn truth(
    rows: &Rows,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: &str,
    interval: &str,
    ws: Option<Uuid>,
) -> Want {
    let tz: Tz = tz.parse().unwrap();
    let in_window = |t: DateTime<Utc>| from <= t && t < to;
    let tickets: Vec<&TicketRow> = rows
        .tickets
        .iter()
        .filter(|t| ws.is_none_or(|w| t.workspace == w))
        .collect();
    let starts = bucket_starts(from, to, tz, interval);
    let bucket_ends: Vec<DateTime<Utc>> = (0..starts.len())
        .map(|i| {
            starts
                .get(i + 1)
                .copied()
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
        .collect();
    let in_bucket =
        |i: usize, t: DateTime<Utc>| in_window(t) && starts[i] <= t && t < bucket_ends[i];

    let volume = (0..starts.len())
        .map(|i| {
            let end = bucket_ends[i].min(to);
            let created = tickets.iter().filter(|t| in_bucket(i, t.created)).count() as i64;
            let resolved = tickets
                .iter()
                .filter(|t| t.resolved.is_some_and(|r| in_bucket(i, r)))
                .count() as i64;
            let open = tickets
                .iter()
                .filter(|t| t.created < end && t.resolved.is_none_or(|r| r >= end))
                .count() as i64;
            (starts[i], created, resolved, open)
        })
        .collect();

    let resolution = stats_of(
        tickets
            .iter()
            .filter_map(|t| {
                t.resolved
                    .filter(|r| in_window(*r))
                    .map(|r| seconds_between(t.created, r))
            })
            .collect(),
    );
    let filed: Vec<&&TicketRow> = tickets.iter().filter(|t| in_window(t.created)).collect();
    let first_response = stats_of(
        filed
            .iter()
            .filter_map(|t| {
                rows.comments
                    .iter()
                    .filter(|c| {
                        c.ticket == t.id && !c.internal && c.author.is_some() && c.key.is_none()
                    })
                    .map(|c| c.created)
                    .min()
                    .map(|first| seconds_between(t.created, first))
            })
            .collect(),
    );

    let mut by = BTreeMap::new();
    for (alias, dimension) in DIMENSIONS {
        let mut groups: BTreeMap<String, (Option<String>, i64)> = BTreeMap::new();
        for t in &filed {
            let latest = rows
                .analyses
                .iter()
                .filter(|a| a.ticket == t.id && a.status == "done")
                .max_by_key(|a| a.created);
            let ai = |f: fn(&AnalysisRow) -> &Option<String>| latest.and_then(|a| f(a).clone());
            let (key, label) = match dimension {
                "STATUS" => (
                    t.status.to_uppercase(),
                    Some(status_label(&t.status).to_owned()),
                ),
                "PRIORITY" => (
                    t.priority.to_uppercase(),
                    Some(status_label(&t.priority).to_owned()),
                ),
                "WORKSPACE" => (
                    t.workspace.to_string(),
                    Some(rows.workspaces[&t.workspace].clone()),
                ),
                "ASSIGNEE" => match t.assignee {
                    Some(u) => (u.to_string(), rows.users[&u].clone()),
                    None => ("none".to_owned(), None),
                },
                _ => {
                    let value = match dimension {
                        "CATEGORY" => ai(|a| &a.category),
                        "SENTIMENT" => ai(|a| &a.sentiment),
                        _ => ai(|a| &a.language),
                    };
                    match value {
                        Some(v) => {
                            let label = ai_label(dimension, &v).map(str::to_owned);
                            (v, label)
                        }
                        None => ("none".to_owned(), None),
                    }
                }
            };
            groups.entry(key).or_insert((label, 0)).1 += 1;
        }
        let mut list: Groups = groups.into_iter().map(|(k, (l, n))| (k, l, n)).collect();
        list.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        by.insert(alias, list);
    }

    let ticket_ws: HashMap<Uuid, Uuid> = rows.tickets.iter().map(|t| (t.id, t.workspace)).collect();
    let runs: Vec<&AnalysisRow> = rows
        .analyses
        .iter()
        .filter(|a| in_window(a.created) && ws.is_none_or(|w| ticket_ws[&a.ticket] == w))
        .collect();
    let ai = [
        runs.len() as i64,
        runs.iter().filter(|a| a.status == "done").count() as i64,
        runs.iter().filter(|a| a.status == "failed").count() as i64,
        runs.iter().map(|a| a.charged).sum(),
        runs.iter()
            .map(|a| i64::from(a.prompt_tokens.unwrap_or(0)))
            .sum(),
        runs.iter()
            .map(|a| i64::from(a.completion_tokens.unwrap_or(0)))
            .sum(),
    ];

    let credits = (0..starts.len())
        .map(|i| {
            let entries = rows.ledger.iter().filter(|e| in_bucket(i, e.created));
            let mut charged = 0;
            let mut added = 0;
            for e in entries {
                match e.kind.as_str() {
                    "CAPTURE" => charged += -e.held_change,
                    "GRANT" | "PURCHASE" | "ALLOWANCE" | "REFUND" => added += e.amount,
                    "ADJUSTMENT" if e.amount > 0 => added += e.amount,
                    _ => {}
                }
            }
            (starts[i], charged, added)
        })
        .collect();

    Want {
        volume,
        resolution,
        first_response,
        by,
        ai,
        credits,
    }
}

// ------------------------------------------------------------------------------------------------
// Comparison: every mismatch, named.

fn start_of(v: &Value) -> Option<DateTime<Utc>> {
    v["start"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn close(got: &Value, want: Option<f64>) -> bool {
    match (got.as_f64(), want) {
        (None, None) => got.is_null(),
        // The server rounds durations to the millisecond (so cached answers stay byte-identical).
        (Some(g), Some(w)) => (g - w).abs() <= 5e-4 + 1e-6 * w.abs().max(1.0),
        _ => false,
    }
}

fn check_stats(name: &str, got: &Value, want: StatsWant, bad: &mut Vec<String>) {
    if got["count"].as_i64() != Some(want.count)
        || !close(&got["meanSeconds"], want.mean)
        || !close(&got["medianSeconds"], want.median)
        || !close(&got["p90Seconds"], want.p90)
    {
        bad.push(format!("{name}: got {got}, want {want:?}"));
    }
}

fn mismatches(got: &Value, want: &Want) -> Vec<String> {
    let mut bad = vec![];
    let empty = vec![];
    let volume = got["ticketVolume"].as_array().unwrap_or(&empty);
    if volume.len() != want.volume.len() {
        bad.push(format!(
            "ticketVolume: {} buckets (first {:?}), want {} (first {:?})",
            volume.len(),
            volume.first().and_then(start_of),
            want.volume.len(),
            want.volume.first().map(|w| w.0)
        ));
    }
    for (i, (start, created, resolved, open)) in want.volume.iter().enumerate() {
        let g = volume.get(i).unwrap_or(&Value::Null);
        if start_of(g) != Some(*start)
            || g["created"].as_i64() != Some(*created)
            || g["resolved"].as_i64() != Some(*resolved)
            || g["openAtEnd"].as_i64() != Some(*open)
        {
            bad.push(format!(
                "ticketVolume[{i}]: got {g}, want start {start} created {created} resolved {resolved} openAtEnd {open}"
            ));
        }
    }
    check_stats(
        "resolutionTime",
        &got["resolutionTime"],
        want.resolution,
        &mut bad,
    );
    check_stats(
        "firstResponseTime",
        &got["firstResponseTime"],
        want.first_response,
        &mut bad,
    );
    for (alias, dimension) in DIMENSIONS {
        let g = got[alias].as_array().unwrap_or(&empty);
        let w = &want.by[alias];
        let same = g.len() == w.len()
            && g.iter().zip(w).all(|(g, (key, label, count))| {
                g["key"] == key.as_str()
                    && g["count"].as_i64() == Some(*count)
                    && match label {
                        Some(l) => g["label"] == l.as_str(),
                        None => g["label"].as_str().is_some_and(|l| !l.is_empty()),
                    }
            });
        if !same {
            bad.push(format!(
                "ticketsBy({dimension}): got {}, want {w:?}",
                Value::Array(g.clone())
            ));
        }
    }
    let ai = &got["aiUsage"];
    // Credits are `BigInt` strings; the counts are plain integers.
    let got_ai = [
        "analyses",
        "done",
        "failed",
        "creditsCharged",
        "promptTokens",
        "completionTokens",
    ]
    .map(|f| match f {
        "creditsCharged" => big_int(&ai[f]).unwrap_or(-1),
        _ => ai[f].as_i64().unwrap_or(-1),
    });
    if got_ai != want.ai {
        bad.push(format!(
            "aiUsage: got {ai}, want [analyses, done, failed, creditsCharged, promptTokens, completionTokens] = {:?}",
            want.ai
        ));
    }
    let credits = got["creditUsage"].as_array().unwrap_or(&empty);
    if credits.len() != want.credits.len() {
        bad.push(format!(
            "creditUsage: {} buckets, want {}",
            credits.len(),
            want.credits.len()
        ));
    }
    for (i, (start, charged, added)) in want.credits.iter().enumerate() {
        let g = credits.get(i).unwrap_or(&Value::Null);
        if start_of(g) != Some(*start)
            || big_int(&g["charged"]) != Some(*charged)
            || big_int(&g["added"]) != Some(*added)
        {
            bad.push(format!(
                "creditUsage[{i}]: got {g}, want start {start} charged {charged} added {added}"
            ));
        }
    }
    bad
}

fn assert_figures(what: &str, got: &Value, want: &Want) {
    let bad = mismatches(got, want);
    if !bad.is_empty() {
        let shown: Vec<&String> = bad.iter().take(25).collect();
        panic!(
            "{what}: {} mismatches:\n  {}",
            bad.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

/// The seeded history's window: a Monday 05:17 UTC to the end of the month; it crosses the US
/// (2026-03-08) and EU (2026-03-29) changes to summer time.
fn main_window() -> (DateTime<Utc>, DateTime<Utc>) {
    (at("2026-03-02T05:17:00Z"), at("2026-03-31T19:45:00Z"))
}

async fn seeded(app: &TestApp, slug: &str, seed_value: u64, n: usize) -> Tenant {
    let t = tenant(app, slug).await;
    let (from, to) = main_window();
    seed(app, &t, seed_value, n, from, to).await;
    t
}

/// Sanity of the seed itself: the edge cases and every kind of row are there, in the window.
fn assert_seed_covers(rows: &Rows, from: DateTime<Utc>, to: DateTime<Utc>) {
    let w = |t: DateTime<Utc>| from <= t && t < to;
    assert!(rows.tickets.iter().filter(|t| w(t.created)).count() >= 40);
    assert!(rows.tickets.iter().filter(|t| t.created < from).count() >= 3);
    assert!(
        rows.tickets
            .iter()
            .filter(|t| t.resolved.is_some_and(w))
            .count()
            >= 15
    );
    assert!(
        rows.comments
            .iter()
            .any(|c| c.key.is_some() && c.author.is_some())
    );
    for kind in [
        "GRANT",
        "PURCHASE",
        "ALLOWANCE",
        "REFUND",
        "ADJUSTMENT",
        "HOLD",
        "CAPTURE",
        "RELEASE",
    ] {
        assert!(
            rows.ledger.iter().any(|e| e.kind == kind && w(e.created)),
            "no {kind} in the window"
        );
    }
    for status in ["done", "failed", "pending"] {
        assert!(
            rows.analyses
                .iter()
                .any(|a| a.status == status && w(a.created))
        );
    }
}

// ------------------------------------------------------------------------------------------------
// 1. Every figure, every interval, several zones and windows.

#[tokio::test]
async fn every_figure_matches_the_rows_for_every_interval_zone_and_window() {
    let app = TestApp::spawn().await;
    let t = seeded(&app, "acme", 11, 60).await;
    let rows = read_rows(&app, t.fx.id).await;
    let (from, to) = main_window();
    assert_seed_covers(&rows, from, to);

    let windows = [
        (from, to),
        // Aligned to UTC midnights.
        (at("2026-03-10T00:00:00Z"), at("2026-03-13T00:00:00Z")),
        // A few hours inside one day.
        (at("2026-03-15T13:13:13Z"), at("2026-03-15T20:00:00Z")),
        // Across the end of the month and beyond the data.
        (at("2026-03-28T21:30:00Z"), at("2026-04-06T00:00:00Z")),
    ];
    let zones = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"];
    let mut checked = 0;
    for (from, to) in windows {
        for tz in zones {
            for interval in INTERVALS {
                let got = figures(
                    &app,
                    &t.fx.owner,
                    FIGURES,
                    vars(from, to, Some(tz), None, Some(interval)),
                )
                .await;
                let want = truth(&rows, from, to, tz, interval, None);
                assert_figures(&format!("[{from}, {to}) {tz} {interval}"), &got, &want);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 64);

    // The defaults, arguments left out of the document: UTC and DAY.
    let defaults = FIGURES
        .replace("$timeZone: String, ", "")
        .replace(", $interval: AnalyticsInterval", "")
        .replace(", timeZone: $timeZone", "")
        .replace("(interval: $interval)", "");
    assert!(!defaults.contains("timeZone") && !defaults.contains("interval"));
    let defaulted = figures(
        &app,
        &t.fx.owner,
        &defaults,
        vars(from, to, None, None, None),
    )
    .await;
    assert_figures(
        "defaults",
        &defaulted,
        &truth(&rows, from, to, "UTC", "DAY", None),
    );

    // The admin sees the same.
    let by_admin = figures(
        &app,
        &t.fx.admin,
        FIGURES,
        vars(from, to, Some("Europe/Berlin"), None, Some("WEEK")),
    )
    .await;
    assert_figures(
        "admin",
        &by_admin,
        &truth(&rows, from, to, "Europe/Berlin", "WEEK", None),
    );
}

/// The persisted operations declare `$timeZone: String` and `$interval: AnalyticsInterval` and
/// promise UTC and DAY when they are omitted (a variable not provided leaves the argument to its
/// default, GraphQL spec "CoerceArgumentValues").
#[tokio::test]
async fn the_dashboard_applies_the_defaults_when_its_variables_are_omitted() {
    let app = TestApp::spawn().await;
    let t = seeded(&app, "acme", 3, 20).await;
    let rows = read_rows(&app, t.fx.id).await;
    let (from, to) = main_window();
    let want = truth(&rows, from, to, "UTC", "DAY", None);
    let mut bad = vec![];
    for (what, v) in [
        ("timeZone omitted", vars(from, to, None, None, Some("DAY"))),
        ("interval omitted", vars(from, to, Some("UTC"), None, None)),
        ("both omitted", vars(from, to, None, None, None)),
    ] {
        for (who, caller) in [("analyst key", &t.fx.analyst_key), ("owner", &t.fx.owner)] {
            let (_, body) = app.post(caller, persisted("dashboard"), v.clone()).await;
            if body.get("errors").is_some() {
                bad.push(format!("{who}, {what}: {v} -> {body}"));
                continue;
            }
            let m = mismatches(&body["data"]["analytics"], &want);
            if !m.is_empty() {
                bad.push(format!("{who}, {what}: {m:?}"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// ------------------------------------------------------------------------------------------------
// 2. The workspace filter.

#[tokio::test]
async fn the_workspace_filter_narrows_every_ticket_figure_but_not_credits() {
    let app = TestApp::spawn().await;
    let t = seeded(&app, "acme", 23, 60).await;
    let rows = read_rows(&app, t.fx.id).await;
    let (from, to) = main_window();
    for (tz, interval) in [
        ("UTC", "DAY"),
        ("America/New_York", "WEEK"),
        ("Asia/Kolkata", "HOUR"),
    ] {
        let all = figures(
            &app,
            &t.fx.owner,
            FIGURES,
            vars(from, to, Some(tz), None, Some(interval)),
        )
        .await;
        let mut created = 0;
        for ws in t.ws {
            let got = figures(
                &app,
                &t.fx.owner,
                FIGURES,
                vars(from, to, Some(tz), Some(ws), Some(interval)),
            )
            .await;
            let want = truth(&rows, from, to, tz, interval, Some(ws));
            assert_figures(&format!("workspace {ws} {tz} {interval}"), &got, &want);
            // One workspace only, and credits stay organization-wide.
            let keys: Vec<&Value> = got["byWorkspace"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| &g["key"])
                .collect();
            assert_eq!(keys, vec![&json!(ws.to_string())], "{}", got["byWorkspace"]);
            assert_eq!(got["creditUsage"], all["creditUsage"]);
            created += want.volume.iter().map(|v| v.1).sum::<i64>();
        }
        let all_created: i64 = all["ticketVolume"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["created"].as_i64().unwrap())
            .sum();
        assert_eq!(created, all_created);
        assert!(created > 0);
    }
}

// ------------------------------------------------------------------------------------------------
// 3. Daylight saving time: bucket starts and counts computed by hand.

/// A tenant with tickets filed (and some resolved) at the given instants.
async fn tenant_with(app: &TestApp, slug: &str, tickets: &[(&str, Option<&str>)]) -> Tenant {
    let t = tenant(app, slug).await;
    let mut client = app.db.admin().await;
    let tx = org_tx(&mut client, t.fx.id).await;
    let mut resolved = vec![];
    for (i, (created, done)) in tickets.iter().enumerate() {
        let status = if done.is_some() { "resolved" } else { "open" };
        let id = insert_ticket(
            &tx,
            t.fx.id,
            t.ws[0],
            &format!("dst {i}"),
            status,
            "medium",
            None,
            at(created),
        )
        .await;
        if let Some(done) = done {
            resolved.push((id, at(done)));
        }
    }
    backdate(&tx, t.fx.id, &resolved, &[]).await;
    tx.commit().await.unwrap();
    t
}

async fn volume(
    app: &TestApp,
    t: &Tenant,
    from: &str,
    to: &str,
    tz: &str,
    interval: &str,
) -> Vec<(DateTime<Utc>, i64, i64, i64)> {
    let q = r#"query($from: DateTime!, $to: DateTime!, $timeZone: String, $interval: AnalyticsInterval) {
        analytics(from: $from, to: $to, timeZone: $timeZone) {
          ticketVolume(interval: $interval) { start created resolved openAtEnd }
          creditUsage(interval: $interval) { start } } }"#;
    let got = figures(
        app,
        &t.fx.owner,
        q,
        vars(at(from), at(to), Some(tz), None, Some(interval)),
    )
    .await;
    let points: Vec<_> = got["ticketVolume"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                start_of(p).unwrap(),
                p["created"].as_i64().unwrap(),
                p["resolved"].as_i64().unwrap(),
                p["openAtEnd"].as_i64().unwrap(),
            )
        })
        .collect();
    let credit_starts: Vec<_> = got["creditUsage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| start_of(p).unwrap())
        .collect();
    assert_eq!(
        credit_starts,
        points.iter().map(|p| p.0).collect::<Vec<_>>(),
        "both series share their buckets"
    );
    points
}

fn points(expected: &[(&str, i64, i64, i64)]) -> Vec<(DateTime<Utc>, i64, i64, i64)> {
    expected
        .iter()
        .map(|(s, c, r, o)| (at(s), *c, *r, *o))
        .collect()
}

#[tokio::test]
async fn buckets_follow_local_calendars_across_daylight_saving_changes() {
    let app = TestApp::spawn().await;

    // Berlin leaves summer time at 2026-10-25T01:00Z (03:00 CEST -> 02:00 CET): a 25-hour day.
    let berlin = tenant_with(
        &app,
        "berlin",
        &[
            ("2026-10-24T09:00:00Z", Some("2026-10-27T00:00:00Z")), // a: before from; resolved at `to`
            ("2026-10-24T21:59:59Z", Some("2026-10-26T05:00:00Z")), // b: Sat 23:59:59 CEST
            ("2026-10-24T22:00:00Z", Some("2026-10-25T22:40:00Z")), // c: Sun 00:00 CEST
            ("2026-10-25T00:30:00Z", None),                         // d: 02:30 CEST
            ("2026-10-25T01:30:00Z", None), // e: 02:30 CET (the repeated hour)
            ("2026-10-25T22:30:00Z", None), // f: Sun 23:30 CET
            ("2026-10-25T23:00:00Z", None), // g: Mon 00:00 CET
            ("2026-10-26T23:30:00Z", None), // h: Tue 00:30 CET
            ("2026-10-27T00:00:00Z", None), // i: at `to`
        ],
    )
    .await;
    assert_eq!(
        volume(
            &app,
            &berlin,
            "2026-10-24T10:00:00Z",
            "2026-10-27T00:00:00Z",
            "Europe/Berlin",
            "DAY"
        )
        .await,
        points(&[
            ("2026-10-23T22:00:00Z", 1, 0, 2),
            ("2026-10-24T22:00:00Z", 4, 1, 5),
            ("2026-10-25T23:00:00Z", 1, 1, 5),
            ("2026-10-26T23:00:00Z", 1, 0, 6),
        ]),
        "Berlin days"
    );
    // Clock hours through the change: 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET.
    assert_eq!(
        volume(
            &app,
            &berlin,
            "2026-10-24T23:00:00Z",
            "2026-10-25T03:00:00Z",
            "Europe/Berlin",
            "HOUR"
        )
        .await,
        points(&[
            ("2026-10-24T23:00:00Z", 0, 0, 3),
            ("2026-10-25T00:00:00Z", 1, 0, 4),
            ("2026-10-25T01:00:00Z", 1, 0, 5),
            ("2026-10-25T02:00:00Z", 0, 0, 5),
        ]),
        "Berlin hours"
    );
    // Weeks from Monday 2026-10-19 00:00 CEST and 2026-10-26 00:00 CET.
    assert_eq!(
        volume(
            &app,
            &berlin,
            "2026-10-24T10:00:00Z",
            "2026-10-27T00:00:00Z",
            "Europe/Berlin",
            "WEEK"
        )
        .await,
        points(&[
            ("2026-10-18T22:00:00Z", 5, 1, 5),
            ("2026-10-25T23:00:00Z", 2, 1, 6),
        ]),
        "Berlin weeks"
    );
    // Months: October from 00:00 CEST, November from 00:00 CET.
    assert_eq!(
        volume(
            &app,
            &berlin,
            "2026-10-24T10:00:00Z",
            "2026-11-02T00:00:00Z",
            "Europe/Berlin",
            "MONTH"
        )
        .await,
        points(&[
            ("2026-09-30T22:00:00Z", 8, 3, 6),
            ("2026-10-31T23:00:00Z", 0, 0, 6),
        ]),
        "Berlin months"
    );

    // New York starts summer time at 2026-03-08T07:00Z (02:00 EST -> 03:00 EDT): a 23-hour day.
    let ny = tenant_with(
        &app,
        "gotham",
        &[
            ("2026-03-07T11:00:00Z", None), // p: before from
            ("2026-03-08T04:59:59Z", None), // q: Sat 23:59:59 EST
            ("2026-03-08T05:00:00Z", Some("2026-03-09T04:00:00Z")), // r: Sun 00:00 EST; resolved Mon 00:00 EDT
            ("2026-03-08T06:30:00Z", None),                         // s: 01:30 EST
            ("2026-03-08T07:15:00Z", None),                         // u: 03:15 EDT
            ("2026-03-09T03:59:59Z", None),                         // v: Sun 23:59:59 EDT
            ("2026-03-09T04:30:00Z", None),                         // w: Mon 00:30 EDT
            ("2026-03-10T11:00:00Z", None),                         // x
        ],
    )
    .await;
    assert_eq!(
        volume(
            &app,
            &ny,
            "2026-03-07T12:00:00Z",
            "2026-03-10T12:00:00Z",
            "America/New_York",
            "DAY"
        )
        .await,
        points(&[
            ("2026-03-07T05:00:00Z", 1, 0, 2),
            ("2026-03-08T05:00:00Z", 4, 0, 6),
            ("2026-03-09T04:00:00Z", 1, 1, 6),
            ("2026-03-10T04:00:00Z", 1, 0, 7),
        ]),
        "New York days"
    );
    assert_eq!(
        volume(
            &app,
            &ny,
            "2026-03-07T12:00:00Z",
            "2026-03-10T12:00:00Z",
            "America/New_York",
            "WEEK"
        )
        .await,
        points(&[
            ("2026-03-02T05:00:00Z", 5, 0, 6),
            ("2026-03-09T04:00:00Z", 2, 1, 7),
        ]),
        "New York weeks"
    );
    // Clock hours across the gap: 01:00 EST, then 03:00 EDT.
    assert_eq!(
        volume(
            &app,
            &ny,
            "2026-03-08T06:30:00Z",
            "2026-03-08T08:30:00Z",
            "America/New_York",
            "HOUR"
        )
        .await,
        points(&[
            ("2026-03-08T06:00:00Z", 1, 0, 4),
            ("2026-03-08T07:00:00Z", 1, 0, 5),
            ("2026-03-08T08:00:00Z", 0, 0, 5),
        ]),
        "New York hours"
    );
    assert_eq!(
        volume(
            &app,
            &ny,
            "2026-02-20T00:00:00Z",
            "2026-04-02T00:00:00Z",
            "America/New_York",
            "MONTH"
        )
        .await,
        points(&[
            ("2026-02-01T05:00:00Z", 0, 0, 0),
            ("2026-03-01T05:00:00Z", 8, 1, 7),
            ("2026-04-01T04:00:00Z", 0, 0, 7),
        ]),
        "New York months"
    );
}

#[tokio::test]
async fn an_hour_bucket_starting_in_the_repeated_hour_starts_at_that_hours_boundary() {
    // 2026-10-25T01:30Z is 02:30 CET, the second 02:30 of that night in Berlin. Truncated to its
    // local clock hour it is 02:00 CET = 01:00Z, not 02:00 CEST = 00:00Z (an hour and a half before
    // `from`).
    let app = TestApp::spawn().await;
    let t = tenant_with(&app, "berlin", &[("2026-10-25T01:40:00Z", None)]).await;
    assert_eq!(
        volume(
            &app,
            &t,
            "2026-10-25T01:30:00Z",
            "2026-10-25T03:00:00Z",
            "Europe/Berlin",
            "HOUR"
        )
        .await,
        points(&[
            ("2026-10-25T01:00:00Z", 1, 0, 1),
            ("2026-10-25T02:00:00Z", 0, 0, 1),
        ]),
    );
}

#[tokio::test]
async fn a_day_whose_midnight_is_skipped_starts_when_the_clocks_jump() {
    // Chile starts summer time at 2026-09-06T04:00Z: Sunday 00:00 -04 becomes 01:00 -03, so that
    // day has no midnight and starts at 01:00 local.
    let app = TestApp::spawn().await;
    let t = tenant_with(
        &app,
        "santiago",
        &[
            ("2026-09-06T03:59:59Z", None), // Sat 23:59:59 -04
            ("2026-09-06T04:00:00Z", None), // Sun 01:00 -03
            ("2026-09-07T02:59:59Z", None), // Sun 23:59:59 -03
            ("2026-09-07T03:00:00Z", None), // Mon 00:00 -03
        ],
    )
    .await;
    assert_eq!(
        volume(
            &app,
            &t,
            "2026-09-05T12:00:00Z",
            "2026-09-07T12:00:00Z",
            "America/Santiago",
            "DAY"
        )
        .await,
        points(&[
            ("2026-09-05T04:00:00Z", 1, 0, 1),
            ("2026-09-06T04:00:00Z", 2, 0, 3),
            ("2026-09-07T03:00:00Z", 1, 0, 4),
        ]),
    );
}

// ------------------------------------------------------------------------------------------------
// 4. An empty window.

#[tokio::test]
async fn an_empty_window_has_zero_buckets_null_statistics_and_no_groups() {
    let app = TestApp::spawn().await;
    let t = seeded(&app, "acme", 5, 20).await;
    let rows = read_rows(&app, t.fx.id).await;
    // Before anything happened.
    let (from, to) = (at("2025-01-01T00:00:00Z"), at("2025-01-08T00:00:00Z"));
    for interval in ["DAY", "WEEK"] {
        let got = figures(
            &app,
            &t.fx.owner,
            FIGURES,
            vars(from, to, Some("UTC"), None, Some(interval)),
        )
        .await;
        let want = truth(&rows, from, to, "UTC", interval, None);
        assert_figures(&format!("empty {interval}"), &got, &want);
        let starts: Vec<_> = got["ticketVolume"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| start_of(p).unwrap())
            .collect();
        let expected: Vec<_> = match interval {
            "DAY" => (1..=7)
                .map(|d| at(&format!("2025-01-0{d}T00:00:00Z")))
                .collect(),
            // 2025-01-01 is a Wednesday.
            _ => vec![at("2024-12-30T00:00:00Z"), at("2025-01-06T00:00:00Z")],
        };
        assert_eq!(starts, expected);
        for p in got["ticketVolume"].as_array().unwrap() {
            assert_eq!(
                (&p["created"], &p["resolved"], &p["openAtEnd"]),
                (&json!(0), &json!(0), &json!(0)),
                "{p}"
            );
        }
        for p in got["creditUsage"].as_array().unwrap() {
            assert_eq!(
                (&p["charged"], &p["added"]),
                (&json!("0"), &json!("0")),
                "{p}"
            );
        }
        for stats in ["resolutionTime", "firstResponseTime"] {
            assert_eq!(
                got[stats],
                json!({"count": 0, "meanSeconds": null, "medianSeconds": null, "p90Seconds": null})
            );
        }
        for (alias, _) in DIMENSIONS {
            assert_eq!(got[alias], json!([]), "{alias}");
        }
        assert_eq!(
            got["aiUsage"],
            json!({"analyses": 0, "done": 0, "failed": 0, "creditsCharged": "0", "promptTokens": 0, "completionTokens": 0})
        );
    }
    // A quiet week after the data: nothing happens, but the backlog is still open.
    let (from, to) = (at("2026-05-04T00:00:00Z"), at("2026-05-11T00:00:00Z"));
    let got = figures(
        &app,
        &t.fx.owner,
        FIGURES,
        vars(from, to, Some("UTC"), None, Some("DAY")),
    )
    .await;
    assert_figures(
        "quiet week",
        &got,
        &truth(&rows, from, to, "UTC", "DAY", None),
    );
    assert_eq!(got["resolutionTime"]["count"], 0);
    assert!(got["ticketVolume"][0]["openAtEnd"].as_i64().unwrap() > 0);
}

// ------------------------------------------------------------------------------------------------
// 5. Bad input.

/// Checks a refusal; what is wrong goes to `bad` (every case is tried, then the test fails listing
/// them all).
async fn refused(
    bad: &mut Vec<String>,
    app: &TestApp,
    caller: &Caller,
    query: &str,
    variables: Value,
    field: &str,
) {
    let (_, body) = app.post(caller, query, variables.clone()).await;
    let first = &body["errors"][0]["extensions"];
    // No figures: `data` null, or (async-graphql stopping the null at the field) `analytics` null.
    let nothing = body["data"].is_null() || body["data"] == json!({"analytics": null});
    if first["code"] != "BAD_USER_INPUT" || first["field"] != field || !nothing {
        bad.push(format!(
            "{variables} (expected BAD_USER_INPUT, field {field}, no data) in {}: got {body}",
            query
                .split_whitespace()
                .take(12)
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
}

#[tokio::test]
async fn bad_windows_zones_and_too_many_buckets_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let owner = &org.owner;
    let mut bad = vec![];
    let v = |from: &str, to: &str, tz: &str, interval: &str| {
        vars(at(from), at(to), Some(tz), None, Some(interval))
    };
    // `to` not after `from`.
    refused(
        &mut bad,
        &app,
        owner,
        FIGURES,
        v("2026-03-02T00:00:00Z", "2026-03-02T00:00:00Z", "UTC", "DAY"),
        "to",
    )
    .await;
    refused(
        &mut bad,
        &app,
        owner,
        FIGURES,
        v("2026-03-02T00:00:00Z", "2026-03-01T23:59:59Z", "UTC", "DAY"),
        "to",
    )
    .await;
    // Unknown zones.
    for tz in ["Mars/Olympus", "", "Europe/Berlinn", "+02:00"] {
        refused(
            &mut bad,
            &app,
            owner,
            FIGURES,
            v("2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", tz, "DAY"),
            "timeZone",
        )
        .await;
    }
    // 1,000 buckets are fine, 1,001 are not, for every interval.
    let limits = [
        (
            "HOUR",
            "2026-01-01T00:00:00Z",
            "2026-02-11T16:00:00Z",
            "2026-02-11T16:00:01Z",
        ),
        // Truncation counts: 00:30 starts its bucket at 00:00.
        (
            "HOUR",
            "2026-01-01T00:30:00Z",
            "2026-02-11T16:00:00Z",
            "2026-02-11T16:00:01Z",
        ),
        (
            "DAY",
            "2000-01-01T00:00:00Z",
            "2002-09-27T00:00:00Z",
            "2002-09-27T00:00:01Z",
        ),
        (
            "WEEK",
            "2000-01-03T00:00:00Z",
            "2019-03-04T00:00:00Z",
            "2019-03-04T00:00:01Z",
        ),
        (
            "MONTH",
            "2000-01-01T00:00:00Z",
            "2083-05-01T00:00:00Z",
            "2083-05-01T00:00:01Z",
        ),
    ];
    let both = r#"query($from: DateTime!, $to: DateTime!, $timeZone: String, $interval: AnalyticsInterval) {
        analytics(from: $from, to: $to, timeZone: $timeZone) {
          ticketVolume(interval: $interval) { start } creditUsage(interval: $interval) { start } } }"#;
    for (interval, from, ok_to, bad_to) in limits {
        let got = figures(&app, owner, both, v(from, ok_to, "UTC", interval)).await;
        assert_eq!(
            got["ticketVolume"].as_array().unwrap().len(),
            1_000,
            "{interval} {from}"
        );
        assert_eq!(
            got["creditUsage"].as_array().unwrap().len(),
            1_000,
            "{interval} {from}"
        );
        refused(
            &mut bad,
            &app,
            owner,
            both,
            v(from, bad_to, "UTC", interval),
            "interval",
        )
        .await;
        refused(
            &mut bad,
            &app,
            owner,
            FIGURES,
            v(from, bad_to, "UTC", interval),
            "interval",
        )
        .await;
    }
    // Only one series over the limit (credits by the hour), the other fine: still nothing returned.
    let mixed = r#"query($from: DateTime!, $to: DateTime!) { analytics(from: $from, to: $to) {
        ticketVolume(interval: DAY) { start } creditUsage(interval: HOUR) { start } aiUsage { analyses } } }"#;
    refused(
        &mut bad,
        &app,
        owner,
        mixed,
        json!({"from": "2026-01-01T00:00:00Z", "to": "2026-02-11T16:00:01Z"}),
        "interval",
    )
    .await;
    // The default interval (DAY) is counted too.
    let plain = r#"query($from: DateTime!, $to: DateTime!) { analytics(from: $from, to: $to) { ticketVolume { start } } }"#;
    refused(
        &mut bad,
        &app,
        owner,
        plain,
        json!({"from": "2000-01-01T00:00:00Z", "to": "2002-09-27T00:00:01Z"}),
        "interval",
    )
    .await;
    assert!(
        bad.is_empty(),
        "{} refusals wrong:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

// ------------------------------------------------------------------------------------------------
// 6. Roles, and the database's own guard.

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test]
async fn owners_admins_and_analyst_keys_read_analytics_agents_and_viewers_are_refused() {
    let app = TestApp::spawn().await;
    let t = seeded(&app, "acme", 7, 30).await;
    let rows = read_rows(&app, t.fx.id).await;
    let (from, to) = main_window();
    let variables = vars(from, to, Some("Europe/Berlin"), None, Some("DAY"));
    let want = truth(&rows, from, to, "Europe/Berlin", "DAY", None);

    for caller in [&t.fx.owner, &t.fx.admin] {
        let got = figures(&app, caller, FIGURES, variables.clone()).await;
        assert_figures(&caller.subject, &got, &want);
    }
    for (who, caller) in [
        ("agent", &t.fx.agent),
        ("viewer", &t.fx.viewer),
        ("agent key", &t.fx.agent_key),
        ("analyst key, ad hoc", &t.fx.analyst_key),
    ] {
        let (_, body) = app.post(caller, FIGURES, variables.clone()).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("FORBIDDEN"),
            "{who}: {body}"
        );
        assert!(
            body["data"].is_null() || body["data"]["analytics"].is_null(),
            "{who}: {body}"
        );
    }
    // A minimal ad-hoc document as well.
    let minimal = r#"query($from: DateTime!, $to: DateTime!) { analytics(from: $from, to: $to) { aiUsage { analyses } } }"#;
    for caller in [&t.fx.agent, &t.fx.viewer, &t.fx.analyst_key] {
        assert_eq!(
            app.err(caller, minimal, variables.clone()).await,
            "FORBIDDEN"
        );
    }

    // The persisted Dashboard: the analyst key runs it (by text and by hash) and gets the truth;
    // agents and viewers sending its text are still refused.
    let dashboard = persisted("dashboard");
    let by_owner = figures(&app, &t.fx.owner, dashboard, variables.clone()).await;
    assert_figures("Dashboard as the owner", &by_owner, &want);
    let by_analyst = figures(&app, &t.fx.analyst_key, dashboard, variables.clone()).await;
    assert_figures("Dashboard as the analyst key", &by_analyst, &want);
    assert_eq!(by_analyst, by_owner);
    let resp = send_raw(t.fx.analyst_key.apply(
        app.http.post(format!("{}/graphql", app.base)).json(&json!({
            "query": "",
            "variables": variables,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(dashboard)}},
        })),
    ))
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json()["data"]["analytics"], by_owner);
    for caller in [&t.fx.agent, &t.fx.viewer] {
        assert_eq!(
            app.err(caller, dashboard, variables.clone()).await,
            "FORBIDDEN"
        );
    }
    // Other workspace ids and intervals through the Dashboard, too.
    let narrowed = vars(from, to, Some("UTC"), Some(t.ws[1]), Some("WEEK"));
    let got = figures(&app, &t.fx.analyst_key, dashboard, narrowed).await;
    assert_figures(
        "Dashboard, analyst, workspace 2",
        &got,
        &truth(&rows, from, to, "UTC", "WEEK", Some(t.ws[1])),
    );

    // The database agrees, whatever a resolver does.
    let pool = app.db.runtime_pool(1);
    for role in [Role::Agent, Role::Viewer] {
        let tx = trusted_tx(&pool, Some(t.fx.id), Some(role), Access::ReadOnly).await;
        let err = tx
            .query("select app.analytics_reader()", &[])
            .await
            .expect_err("agents and viewers are refused by the database");
        assert_eq!(
            sql_state(&err),
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "{role:?}: {err:?}"
        );
        let _ = tx.rollback().await;
    }
    // Every statement checks it, even called past the resolvers' casbin checks (each in a
    // transaction of its own: a refused statement aborts its transaction).
    use deskgraph::analytics::repo;
    for role in [Role::Agent, Role::Viewer] {
        for which in 0..6 {
            let tx = trusted_tx(&pool, Some(t.fx.id), Some(role), Access::ReadOnly).await;
            let buckets = [from];
            let result = match which {
                0 => repo::ticket_volume(&tx, &buckets, from, to, None)
                    .await
                    .map(|_| ()),
                1 => repo::resolution_time(&tx, from, to, None).await.map(|_| ()),
                2 => repo::first_response_time(&tx, from, to, None)
                    .await
                    .map(|_| ()),
                3 => repo::breakdowns(&tx, from, to, None).await.map(|_| ()),
                4 => repo::ai_usage(&tx, from, to, None).await.map(|_| ()),
                _ => repo::credit_usage(&tx, &buckets, from, to)
                    .await
                    .map(|_| ()),
            };
            assert!(
                matches!(result, Err(deskgraph::error::AppError::Forbidden(_))),
                "{role:?}, statement {which}: {result:?}"
            );
            let _ = tx.rollback().await;
        }
    }
    {
        let tx = trusted_tx(&pool, Some(t.fx.id), None, Access::ReadOnly).await;
        let err = tx
            .query("select app.analytics_reader()", &[])
            .await
            .expect_err("no role, no analytics");
        assert_eq!(sql_state(&err), Some(SqlState::INSUFFICIENT_PRIVILEGE));
        let _ = tx.rollback().await;
    }
    for role in [Role::Owner, Role::Admin, Role::Analyst] {
        let tx = trusted_tx(&pool, Some(t.fx.id), Some(role), Access::ReadOnly).await;
        let ok: bool = tx
            .query_one("select app.analytics_reader()", &[])
            .await
            .unwrap()
            .get(0);
        assert!(ok, "{role:?}");
        tx.rollback().await.unwrap();
    }
}

// ------------------------------------------------------------------------------------------------
// 7. Organizations see none of each other.

#[tokio::test]
async fn an_organization_sees_none_of_anothers_rows() {
    let app = TestApp::spawn().await;
    let a = seeded(&app, "acme", 31, 50).await;
    let b = seeded(&app, "globex", 47, 15).await;
    let rows_a = read_rows(&app, a.fx.id).await;
    let rows_b = read_rows(&app, b.fx.id).await;
    let (from, to) = main_window();
    for (tz, interval) in [
        ("UTC", "DAY"),
        ("Europe/Berlin", "WEEK"),
        ("America/New_York", "HOUR"),
    ] {
        let got_b = figures(
            &app,
            &b.fx.owner,
            FIGURES,
            vars(from, to, Some(tz), None, Some(interval)),
        )
        .await;
        assert_figures(
            &format!("B {tz} {interval}"),
            &got_b,
            &truth(&rows_b, from, to, tz, interval, None),
        );
        let got_a = figures(
            &app,
            &a.fx.owner,
            FIGURES,
            vars(from, to, Some(tz), None, Some(interval)),
        )
        .await;
        assert_figures(
            &format!("A {tz} {interval}"),
            &got_a,
            &truth(&rows_a, from, to, tz, interval, None),
        );
        assert_ne!(got_a, got_b);
    }
    // A's workspace as B's filter: no tickets at all, B's own credits.
    let all_b = figures(
        &app,
        &b.fx.owner,
        FIGURES,
        vars(from, to, Some("UTC"), None, Some("DAY")),
    )
    .await;
    for ws in a.ws {
        // The owner ad hoc, the analyst key through the persisted Dashboard.
        for (caller, query) in [
            (&b.fx.owner, FIGURES),
            (&b.fx.analyst_key, persisted("dashboard")),
        ] {
            let got = figures(
                &app,
                caller,
                query,
                vars(from, to, Some("UTC"), Some(ws), Some("DAY")),
            )
            .await;
            assert_figures(
                "B filtered by A's workspace",
                &got,
                &truth(&rows_b, from, to, "UTC", "DAY", Some(ws)),
            );
            for p in got["ticketVolume"].as_array().unwrap() {
                assert_eq!(
                    (&p["created"], &p["resolved"], &p["openAtEnd"]),
                    (&json!(0), &json!(0), &json!(0)),
                    "{p}"
                );
            }
            for stats in ["resolutionTime", "firstResponseTime"] {
                assert_eq!(got[stats]["count"], 0);
            }
            for (alias, _) in DIMENSIONS {
                assert_eq!(got[alias], json!([]), "{alias}");
            }
            assert_eq!(got["aiUsage"]["analyses"], 0);
            assert_eq!(got["creditUsage"], all_b["creditUsage"]);
        }
    }
    // A's analyst key through the Dashboard sees A only.
    let got = figures(
        &app,
        &a.fx.analyst_key,
        persisted("dashboard"),
        vars(from, to, Some("UTC"), None, Some("DAY")),
    )
    .await;
    assert_figures(
        "A's analyst",
        &got,
        &truth(&rows_a, from, to, "UTC", "DAY", None),
    );
}
