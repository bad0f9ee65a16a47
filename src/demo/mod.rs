//! `deskgraph demo`: brings everything up on this machine with sample data, with no configuration.
//! It finds the local PostgreSQL (or starts a private cluster; see [`database`]), migrates, seeds two
//! organizations through the same repository functions the API uses, prints tokens and example
//! queries, and serves.

pub mod cluster;
pub mod database;
pub mod seed_data;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::db::Pool;
use anyhow::Context as _;
use uuid::Uuid;

use crate::ai::{Ai, AiConfig};
use crate::app::{Server, build_state, start_workers};
use crate::authz::Role;
use crate::billing::repo as billing_repo;
use crate::config::{DbConfig, ServerConfig};
use crate::db::{Access, Credentials, TenantContext, TenantTx, TxOptions, migrate};
use crate::error::AppError;
use crate::identity::auth::{mint_token, new_secret};
use crate::identity::repo as identity_repo;
use crate::jobs::WorkerConfig;
use crate::support::{self, repo as support_repo};
use crate::support::{PrioritySource, TicketPriority, TicketStatus};

/// A seeded member and where they belong.
#[derive(Debug, Clone)]
pub struct SeededMember {
    pub subject: String,
    pub email: String,
    pub name: String,
    pub user_id: Uuid,
    /// (organization slug, organization id, role)
    pub memberships: Vec<(String, Uuid, Role)>,
}

#[derive(Debug, Default)]
pub struct Seeded {
    /// Organization ids by slug.
    pub orgs: HashMap<String, Uuid>,
    pub members: Vec<SeededMember>,
    /// Analyst API key secrets by organization slug (only when this run created them).
    pub analyst_keys: HashMap<String, String>,
    /// Whether this run wrote the data (false when it already existed).
    pub created: bool,
}

async fn user_id_for(pool: &Pool, subject: &str, email: &str, name: &str) -> anyhow::Result<Uuid> {
    let creds = Credentials::User {
        subject: subject.to_owned(),
        email: Some(email.to_owned()),
        email_verified: None,
        name: Some(name.to_owned()),
        org_id: None,
    };
    let tx = TenantTx::begin(pool, &creds, TxOptions::new(Access::ReadWrite, 30_000)).await?;
    let user = tx.context().user_id.context("user was not resolved")?;
    tx.commit().await?;
    Ok(user)
}

/// Seeds the sample organizations through the runtime role, unless they exist. Idempotent.
/// [`seed_with`] the built-in analyzer's prices.
pub async fn seed(pool: &Pool) -> anyhow::Result<Seeded> {
    seed_with(pool, &Ai::builtin()).await
}

/// Seeds the sample organizations (once; later runs find them), requesting an AI analysis of every
/// sample ticket, as filing it through the API would.
pub async fn seed_with(pool: &Pool, ai: &Ai) -> anyhow::Result<Seeded> {
    let mut seeded = Seeded::default();
    let mut members: HashMap<&str, SeededMember> = HashMap::new();
    for org in seed_data::ORGS {
        for m in org.members {
            let user_id = user_id_for(pool, m.subject, m.email, m.name).await?;
            members.entry(m.subject).or_insert_with(|| SeededMember {
                subject: m.subject.into(),
                email: m.email.into(),
                name: m.name.into(),
                user_id,
                memberships: vec![],
            });
        }
    }
    for org in seed_data::ORGS {
        let owner = org
            .members
            .iter()
            .find(|m| m.role == "owner")
            .context("seed org without owner")?;
        let owner_id = members[owner.subject].user_id;
        // Does the owner already have this organization? Then the data is there.
        let probe = TenantTx::begin(
            pool,
            &Credentials::Trusted(TenantContext {
                user_id: Some(owner_id),
                ..Default::default()
            }),
            TxOptions::new(Access::ReadOnly, 30_000),
        )
        .await?;
        let existing = identity_repo::my_organizations(&probe)
            .await?
            .into_iter()
            .find(|o| o.slug == org.slug);
        probe.rollback().await?;
        // Give the connection back before seeding: with a pool of one, seeding would wait for it.
        drop(probe);
        let org_id = match existing {
            Some(o) => o.id,
            None => {
                let id = Uuid::now_v7();
                match seed_org(ai, pool, org, id, owner_id, &members, &mut seeded).await {
                    Ok(()) => {
                        seeded.created = true;
                        id
                    }
                    // The slug exists but its seeded owner is no longer in it (ownership moved on):
                    // the organization is someone's now; leave it as it is.
                    Err(err) if slug_taken(&err) => {
                        println!(
                            "Organization {:?} exists and was changed since it was seeded; leaving it as it is.",
                            org.slug
                        );
                        continue;
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        seeded.orgs.insert(org.slug.to_owned(), org_id);
        for m in org.members {
            let role: Role = m.role.parse()?;
            if let Some(member) = members.get_mut(m.subject) {
                member.memberships.push((org.slug.to_owned(), org_id, role));
            }
        }
    }
    let mut list: Vec<SeededMember> = members.into_values().collect();
    list.sort_by(|a, b| a.subject.cmp(&b.subject));
    seeded.members = list;
    Ok(seeded)
}

async fn seed_org(
    ai: &Ai,
    pool: &Pool,
    org: &seed_data::SeedOrg,
    org_id: Uuid,
    owner_id: Uuid,
    members: &HashMap<&str, SeededMember>,
    seeded: &mut Seeded,
) -> anyhow::Result<()> {
    let ctx = TenantContext {
        org_id: Some(org_id),
        user_id: Some(owner_id),
        role: Some(Role::Owner),
        ..TenantContext::default()
    };
    let tx = TenantTx::begin(
        pool,
        &Credentials::Trusted(ctx),
        TxOptions::new(Access::ReadWrite, 60_000),
    )
    .await?;
    identity_repo::insert_organization(&tx, org_id, org.slug, org.name, owner_id).await?;
    // The sample organizations are on the Pro plan, with its monthly allowance.
    billing_repo::change_plan(&tx, "pro").await?;
    for m in org.members.iter().filter(|m| m.role != "owner") {
        identity_repo::insert_member(&tx, members[m.subject].user_id, m.role.parse()?).await?;
    }
    let mut workspaces = HashMap::new();
    for name in org.workspaces {
        workspaces.insert(*name, support_repo::insert_workspace(&tx, name).await?.id);
    }
    for t in org.tickets {
        let workspace_id = *workspaces
            .get(t.workspace)
            .context("seed ticket names an unknown workspace")?;
        // Filed as `createTicket` files it: with its analysis requested in the same transaction.
        let ticket = support::service::file_ticket(
            &tx,
            ai,
            &support_repo::NewTicket {
                workspace_id,
                title: t.title,
                description: t.description,
                requester_email: Some(t.requester_email),
                priority: t.priority.parse::<TicketPriority>()?,
                // The sample priorities are a person's choice, as when `createTicket` is given a
                // priority: the analysis proposes its own but does not overwrite them.
                priority_source: PrioritySource::Human,
                status: t.status.parse::<TicketStatus>()?,
                assignee_id: t.assignee.map(|s| members[s].user_id),
                created_by: Some(owner_id),
            },
        )
        .await?;
        for c in t.comments {
            support_repo::insert_comment(
                &tx,
                ticket.id,
                Some(members[c.author].user_id),
                None,
                c.body,
                c.internal,
            )
            .await?;
        }
    }
    let (_, secret) =
        identity_repo::create_api_key(&tx, "Analytics (demo)", Role::Analyst, Some(owner_id))
            .await?;
    tx.commit().await?;
    seeded.analyst_keys.insert(org.slug.to_owned(), secret);
    Ok(())
}

fn slug_taken(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<AppError>(),
        Some(AppError::BadInput {
            field: Some("slug"),
            ..
        })
    )
}

/// Writes a file only its owner can read (the demo's secrets), appending or replacing.
fn write_private(path: &Path, text: &str, append: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).write(true);
    if append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The demo's folder when `DESKGRAPH_DEMO_DIR` is unset.
pub const DEFAULT_DIR: &str = ".deskgraph";

/// The file of the demo's JWT secret in its folder.
const JWT_SECRET_FILE: &str = "jwt-secret";

/// A secret the demo keeps in `dir/name` (its JWT secret, its runtime role's password), made on
/// first use.
fn stored_secret(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    if let Ok(secret) = std::fs::read_to_string(&path) {
        let secret = secret.trim().to_owned();
        if !secret.is_empty() {
            return Ok(secret);
        }
    }
    let secret = new_secret("");
    write_private(&path, &secret, false)?;
    Ok(secret)
}

/// The JWT secret of the demo whose folder is `dir`, and its file (for `deskgraph token`).
pub fn read_secret(dir: &Path) -> anyhow::Result<(String, PathBuf)> {
    let path = dir.join(JWT_SECRET_FILE);
    let secret = std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    if secret.is_empty() {
        anyhow::bail!(
            "no secret to sign with: set DESKGRAPH_JWT_SECRET (or --secret) to the server's secret, \
             or run this where `deskgraph demo` ran (it keeps its secret in {}, which is missing or \
             empty; DESKGRAPH_DEMO_DIR or --demo-dir names another demo folder)",
            path.display()
        );
    }
    Ok((secret, path))
}

pub async fn run(
    db: database::DemoDbArgs,
    server: ServerConfig,
    worker: WorkerConfig,
    ai: AiConfig,
    data_dir: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize()?;
    let database::Resolved {
        db,
        private,
        summary,
    } = database::resolve(&db, &data_dir).await?;
    println!("{summary}");
    let result = migrate_seed_and_serve(db, server, worker, ai, &data_dir).await;
    // A cluster this demo started stops with it; its data stays for the next run.
    if let Some(private) = &private {
        private.stop();
    }
    result
}

async fn migrate_seed_and_serve(
    db: DbConfig,
    mut server: ServerConfig,
    worker: WorkerConfig,
    ai: AiConfig,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let report = migrate::run(&db).await?;
    println!(
        "Database ready (migrations applied: {}).",
        if report.applied.is_empty() {
            "none needed".into()
        } else {
            report.applied.join(", ")
        }
    );

    if server.jwt_secret.is_empty() {
        server.jwt_secret = stored_secret(data_dir, JWT_SECRET_FILE)?.into();
    }
    let ai = Ai::from_config(&ai, worker.max_attempts).await?;
    let state = build_state(&db, &server, ai).await?;
    let seeded = seed_with(&state.engine.pool, &state.engine.ai).await?;
    // The demo always analyses its tickets, even when asked for no workers.
    let workers = start_workers(
        &state,
        &db,
        &WorkerConfig {
            workers: worker.workers.max(1),
            ..worker
        },
    )?;
    let keys_file = data_dir.join("analyst-keys.txt");
    if !seeded.analyst_keys.is_empty() {
        let text: String = seeded
            .analyst_keys
            .iter()
            .map(|(slug, key)| format!("{slug} {key}\n"))
            .collect();
        // Appended: keys of organizations seeded by earlier runs stay listed.
        write_private(&keys_file, &text, true)?;
    }
    // GraphiQL opens signed in as a seeded user (only the demo hands its page tokens).
    state
        .graphiql
        .sign_in_as(graphiql_users(&seeded, server.jwt_secret.expose())?)?;
    let running = Server::start(state, &server).await?.with_workers(workers);
    print_welcome(
        &seeded,
        server.jwt_secret.expose(),
        running.addr,
        &keys_file,
    )?;
    running.wait().await
}

/// The development token of a seeded member (24 h), as the welcome text prints it.
fn dev_token(secret: &str, m: &SeededMember) -> anyhow::Result<String> {
    mint_token(
        secret,
        &m.subject,
        Some(&m.email),
        Some(&m.name),
        None,
        24 * 3600,
    )
}

/// The identities the demo's GraphiQL page offers: every seeded membership (owner, admin, agent and
/// viewer of each organization, in that order), with the development token the welcome text prints
/// for its member (24 h).
pub fn graphiql_users(
    seeded: &Seeded,
    secret: &str,
) -> anyhow::Result<Vec<crate::http::GraphiqlUser>> {
    let mut users = vec![];
    for m in &seeded.members {
        let token = dev_token(secret, m)?;
        for (slug, org_id, role) in &m.memberships {
            users.push((
                (slug.clone(), *role as u8),
                crate::http::GraphiqlUser {
                    label: format!("{} — {role} of {slug}", m.name),
                    token: token.clone().into(),
                    org_id: *org_id,
                },
            ));
        }
    }
    users.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(users.into_iter().map(|(_, user)| user).collect())
}

fn print_welcome(
    seeded: &Seeded,
    secret: &str,
    addr: std::net::SocketAddr,
    keys_file: &Path,
) -> anyhow::Result<()> {
    let mut out = String::new();
    out += &format!(
        "\ndeskgraph demo {} — GraphiQL: http://{addr}/graphql\n\n",
        if seeded.created {
            "seeded"
        } else {
            "(sample data already present)"
        }
    );
    out += "Development tokens (24 h). Send `Authorization: Bearer <token>` and `x-org-id: <organization id>`:\n";
    for m in &seeded.members {
        let token = dev_token(secret, m)?;
        let roles: Vec<String> = m
            .memberships
            .iter()
            .map(|(slug, id, role)| format!("{role} of {slug} ({id})"))
            .collect();
        out += &format!(
            "\n  {} <{}> — {}\n  {token}\n",
            m.name,
            m.email,
            roles.join(", ")
        );
    }
    if keys_file.exists() {
        out += &format!(
            "\nAnalyst API keys (persisted queries only): {}\n",
            keys_file.display()
        );
    }
    out += "\nEvery ticket is analysed in the background (built-in offline analyzer unless OPENAI_API_KEY is set).\n";
    out += r#"
Example queries:
  { viewer { user { name } organization { name } role } }
  { tickets(first: 10, filter: { status: OPEN }) { totalCount edges { node { number title priority workspace { name } assignee { name } commentCount } } } }
  { tickets(first: 5, filter: { search: "refund" }) { edges { node { number title status } } } }
  mutation { createTicket(input: { workspaceId: "<id from { workspaces { id name } }>", title: "Printer on fire" }) { id number analysis { status } } }
  { tickets(first: 5) { edges { node { number title priority prioritySource analysis { status category sentiment language summary creditsCharged } similarTickets(limit: 3) { score ticket { number title } } } } } }
  { credits { balance held plan { name monthlyCredits seatLimit } ledger(first: 5) { edges { node { kind amount balanceAfter note } } } } }
  { auditLog(first: 5) { edges { node { seq occurredAt action table actor { kind role user { name } } after } } } }   (owners, admins)
  { verifyAuditChain { ok checkedEntries firstBrokenSeq } }   (owners, admins)
"#;
    println!("{out}");
    Ok(())
}
