//! The `deskgraph` command line: one binary, several roles.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::ai::{Ai, AiConfig, handlers};
use crate::app::{Server, build_state, start_workers};
use crate::config::{DbConfig, LogConfig, ServerConfig, ShutdownConfig};
use crate::jobs::{WorkerConfig, Workers};
use crate::{db, demo, identity, schema, telemetry};

#[derive(Parser, Debug)]
#[command(
    name = "deskgraph",
    version,
    about = "GraphQL backend for AI-assisted, multi-tenant support desks"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogConfig,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the GraphQL API (DATABASE_URL must be the runtime role; the server refuses a role that
    /// can bypass row level security).
    Serve {
        #[command(flatten)]
        db: DbConfig,
        #[command(flatten)]
        server: ServerConfig,
        #[command(flatten)]
        worker: WorkerConfig,
        #[command(flatten)]
        ai: AiConfig,
    },
    /// Run job workers only (AI analyses, vector syncs), no HTTP server; any number may run.
    Worker {
        #[command(flatten)]
        db: DbConfig,
        #[command(flatten)]
        worker: WorkerConfig,
        #[command(flatten)]
        ai: AiConfig,
        #[command(flatten)]
        shutdown: ShutdownConfig,
    },
    /// Queue a re-index of ticket vectors into the current Qdrant collection (that of the embedding
    /// model and dimension), for one organization or all; the job workers (`worker`, or `serve`) run
    /// it batch by batch, embedding only tickets whose vector is missing or of an older text.
    Reindex {
        #[command(flatten)]
        db: DbConfig,
        #[command(flatten)]
        ai: AiConfig,
        /// Only this organization (otherwise every organization, listed with DATABASE_ADMIN_URL).
        #[arg(long)]
        org: Option<Uuid>,
        /// Tickets per job run (one embedder call each).
        #[arg(long, default_value_t = crate::ai::reindex::DEFAULT_BATCH,
              value_parser = clap::value_parser!(i64).range(1..=crate::ai::reindex::MAX_BATCH))]
        batch_size: i64,
    },
    /// Create the database if missing, apply migrations and create the runtime role (DATABASE_ADMIN_URL).
    Migrate {
        #[command(flatten)]
        db: DbConfig,
    },
    /// Print an HS256 development JWT signed with DESKGRAPH_JWT_SECRET.
    Token {
        /// The subject (any string, e.g. `user_2abc`).
        #[arg(long)]
        sub: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Default organization (sent as the `org_id` claim).
        #[arg(long)]
        org: Option<Uuid>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        #[arg(long, env = "DESKGRAPH_JWT_SECRET", hide_env_values = true)]
        secret: crate::secret::Secret,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Print the persisted operations the server registers as an Apollo persisted query manifest
    /// (JSON: id = sha256 of the body, name, type, body; sorted by name).
    Manifest {
        /// Folder of persisted operations (`*.graphql`) instead of the embedded catalogue (as for
        /// `serve`); empty: the catalogue compiled into the binary.
        #[arg(long, env = "DESKGRAPH_PERSISTED_DIR", default_value = "")]
        persisted_dir: String,
    },
    /// Zero-configuration demo: local PostgreSQL (or a private cluster), migrations, sample data, tokens, server.
    Demo {
        #[command(flatten)]
        db: DbConfig,
        #[command(flatten)]
        server: ServerConfig,
        #[command(flatten)]
        worker: WorkerConfig,
        #[command(flatten)]
        ai: AiConfig,
        /// Folder for the demo's own files (its JWT secret, API key, and a private PostgreSQL cluster if needed).
        #[arg(long, env = "DESKGRAPH_DEMO_DIR", default_value = ".deskgraph")]
        data_dir: std::path::PathBuf,
    },
}

pub async fn run(cli: Cli) -> ExitCode {
    telemetry::init(&cli.log);
    match dispatch(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "deskgraph failed");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            db,
            server,
            worker,
            ai,
        } => {
            // Fail closed before reaching out to anything else (the model, Qdrant): a runtime role
            // that can bypass row level security never serves.
            crate::db::safety::check_runtime_role(&crate::db::runtime_pool(&db)?).await?;
            let ai = Ai::from_config(&ai, worker.max_attempts).await?;
            let state = build_state(&db, &server, ai).await?;
            let workers = start_workers(&state, &db, &worker)?;
            Server::start(state, &server)
                .await?
                .with_workers(workers)
                .wait()
                .await
        }
        Command::Worker {
            db,
            worker,
            ai,
            shutdown,
        } => {
            let pool = crate::db::runtime_pool(&db)?;
            crate::db::safety::check_runtime_role(&pool).await?;
            let ai = Ai::from_config(&ai, worker.max_attempts).await?;
            let workers = Workers::start(
                pool,
                db.database_url.expose(),
                db.statement_timeout_ms,
                WorkerConfig {
                    workers: worker.workers.max(1),
                    ..worker
                },
                handlers::handlers(&ai),
            )?;
            crate::http::shutdown_signal().await;
            tracing::info!("shutting down job workers");
            workers.shutdown(shutdown.grace()).await;
            Ok(())
        }
        Command::Reindex {
            db,
            ai,
            org,
            batch_size,
        } => {
            anyhow::ensure!(
                !ai.qdrant_url.is_empty(),
                "reindex needs Qdrant: set QDRANT_URL (its gRPC URL, e.g. http://localhost:6334); \
                 without it similar tickets come from PostgreSQL full-text search and there is \
                 nothing to re-index"
            );
            // Checks the settings the workers use, and creates the collection when missing.
            let pipeline = Ai::from_config(&ai, crate::jobs::DEFAULT_MAX_ATTEMPTS).await?;
            let collection = pipeline
                .index
                .as_ref()
                .map(|i| i.collection().to_owned())
                .unwrap_or_default();
            let queued = crate::ai::reindex::queue(&db, org, batch_size).await?;
            println!(
                "queued a re-index of {} organization(s) into Qdrant collection {collection}{}; \
                 the job workers run it",
                queued.queued,
                if queued.already > 0 {
                    format!(" ({} already under way)", queued.already)
                } else {
                    String::new()
                },
            );
            Ok(())
        }
        Command::Migrate { db } => {
            let report = db::migrate::run(&db).await?;
            println!(
                "migrations applied: {}{}{}",
                if report.applied.is_empty() {
                    "none (up to date)".to_owned()
                } else {
                    report.applied.join(", ")
                },
                if report.created_database {
                    "; database created"
                } else {
                    ""
                },
                if report.created_role {
                    "; runtime role created"
                } else {
                    ""
                },
            );
            Ok(())
        }
        Command::Token {
            sub,
            email,
            name,
            org,
            ttl,
            secret,
        } => {
            println!(
                "{}",
                identity::auth::mint_token(
                    secret.expose(),
                    &sub,
                    email.as_deref(),
                    name.as_deref(),
                    org,
                    ttl
                )?
            );
            Ok(())
        }
        Command::Schema => {
            print!("{}", schema::sdl());
            Ok(())
        }
        Command::Manifest { persisted_dir } => {
            let catalogue = schema::persisted::PersistedQueries::from_setting(&persisted_dir)?;
            let json = serde_json::to_string_pretty(&catalogue.manifest())?;
            // Written, not printed: a closed pipe (`| head`) is an error to report, not a panic.
            let mut out = std::io::stdout().lock();
            writeln!(out, "{json}")
                .and_then(|()| out.flush())
                .context("cannot write the manifest")
        }
        Command::Demo {
            db,
            server,
            worker,
            ai,
            data_dir,
        } => demo::run(db, server, worker, ai, &data_dir).await,
    }
}
