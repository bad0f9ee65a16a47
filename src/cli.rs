//! The `deskgraph` command line: one binary, several roles.

use std::io::Write as _;
use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use uuid::Uuid;

use crate::ai::{Ai, AiConfig, handlers};
use crate::app::{Server, build_state, start_workers};
use crate::config::{
    DbConfig, LogConfig, MigrateDbArgs, ReindexDbArgs, RuntimeDbArgs, ServerConfig, ShutdownConfig,
};
use crate::jobs::{WorkerConfig, Workers};
use crate::secret::Secret;
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
        db: RuntimeDbArgs,
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
        db: RuntimeDbArgs,
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
        db: ReindexDbArgs,
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
        db: MigrateDbArgs,
    },
    /// Print an HS256 development JWT signed with DESKGRAPH_JWT_SECRET (or, without it, with the
    /// secret of the demo in DESKGRAPH_DEMO_DIR).
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
        /// The server's HS256 secret. Without it: the secret `deskgraph demo` keeps in its folder.
        #[arg(long, env = "DESKGRAPH_JWT_SECRET", hide_env_values = true)]
        secret: Option<Secret>,
        /// Folder of the demo whose secret signs the token when no secret is given.
        #[arg(long, env = "DESKGRAPH_DEMO_DIR", default_value = demo::DEFAULT_DIR)]
        demo_dir: PathBuf,
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
        db: demo::database::DemoDbArgs,
        #[command(flatten)]
        server: ServerConfig,
        #[command(flatten)]
        worker: WorkerConfig,
        #[command(flatten)]
        ai: AiConfig,
        /// Folder for the demo's own files (its JWT secret, analyst API keys, and a private
        /// PostgreSQL cluster if one is needed).
        #[arg(
            long,
            alias = "data-dir",
            env = "DESKGRAPH_DEMO_DIR",
            default_value = demo::DEFAULT_DIR
        )]
        demo_dir: PathBuf,
    },
}

/// Shown under every command's options, which do not repeat the log settings.
const LOG_SETTINGS_NOTE: &str = "Logging: --log and --log-format (DESKGRAPH_LOG, DESKGRAPH_LOG_FORMAT) \
     apply to every command; see `deskgraph --help`.";

/// The command line's definition. The log settings are global (accepted before or after the
/// command) but listed once, in `deskgraph --help`: clap would otherwise repeat global options among
/// each command's own, so each command carries hidden copies of them (which clap then does not
/// propagate; their values still reach [`Cli::log`]).
pub fn command() -> clap::Command {
    let top = Cli::command();
    let log_args: Vec<clap::Arg> = top
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .map(|arg| arg.clone().hide(true))
        .collect();
    top.mut_subcommands(|sub| sub.args(log_args.clone()).after_help(LOG_SETTINGS_NOTE))
}

/// Parses `args` (the program name first).
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut command = command();
    let matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

/// Parses the process's command line; prints help, the version or a usage error and exits when
/// that is what it holds.
pub fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
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
            let db = DbConfig::from(db);
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
            let db = DbConfig::from(db);
            let pool = crate::db::runtime_pool(&db)?;
            crate::db::safety::check_runtime_role(&pool).await?;
            let ai = Ai::from_config(&ai, worker.max_attempts).await?;
            let workers = Workers::start(
                pool,
                db.listen_url(),
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
            let queued = crate::ai::reindex::queue(&db.into(), org, batch_size).await?;
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
            let report = db::migrate::run(&db.into()).await?;
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
            demo_dir,
        } => {
            let secret = match secret.filter(|s| !s.is_empty()) {
                Some(secret) => secret,
                None => {
                    let (secret, file) = demo::read_secret(&demo_dir)?;
                    // On stderr, so that `$(deskgraph token …)` still captures the token alone.
                    eprintln!("signed with the demo's secret in {}", file.display());
                    Secret::new(secret)
                }
            };
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
            demo_dir,
        } => demo::run(db, server, worker, ai, &demo_dir).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_settings_are_read_before_or_after_the_command() {
        for args in [
            &["deskgraph", "--log", "debug", "schema"][..],
            &["deskgraph", "schema", "--log", "debug"][..],
            &["deskgraph", "migrate", "--log=debug"][..],
        ] {
            let cli = try_parse_from(args).unwrap_or_else(|err| panic!("{args:?}: {err}"));
            assert_eq!(cli.log.filter, "debug", "{args:?}");
        }
    }

    #[test]
    fn each_command_refuses_the_options_of_others() {
        for args in [
            &["deskgraph", "migrate", "--pool-size", "3"][..],
            &["deskgraph", "schema", "--database-url", "postgres://x@h/d"][..],
            &["deskgraph", "serve", "--app-role", "x"][..],
            &[
                "deskgraph",
                "token",
                "--sub",
                "s",
                "--listen",
                "127.0.0.1:1",
            ][..],
        ] {
            assert!(try_parse_from(args).is_err(), "{args:?}");
        }
        // `token` needs no secret on the command line (it may come from the demo's folder).
        let cli = try_parse_from(["deskgraph", "token", "--sub", "s", "--demo-dir", "/d"]).unwrap();
        let Command::Token { demo_dir, .. } = cli.command else {
            panic!("not token");
        };
        assert_eq!(demo_dir, PathBuf::from("/d"));
        // The demo's folder flag keeps its old name too.
        assert!(try_parse_from(["deskgraph", "demo", "--data-dir", "/d"]).is_ok());
    }
}
