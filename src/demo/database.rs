//! Where `demo` runs: one server and one database, named by one URL. The demo migrates that database
//! as the owner (`DATABASE_ADMIN_URL`) and seeds and serves it as the runtime role, so the runtime
//! connection is derived from the owner's (same hosts, ports and database, as `DESKGRAPH_APP_ROLE`),
//! and a `DATABASE_URL` that names another server or database is refused rather than followed.
//!
//! A private cluster is started only when nothing listens at the default URL: a server that answers
//! but refuses the login is reported as such, and a URL someone set is never replaced.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use tokio_postgres::config::Host;

use super::cluster::{self, PrivateCluster};
use crate::config::{
    AppRoleArgs, DEFAULT_DATABASE_ADMIN_URL, DEFAULT_DATABASE_URL, DbConfig, StatementTimeoutArgs,
};
use crate::db::tls::{Target, error_chain};
use crate::secret::SecretUrl;

/// The database settings `demo` reads.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoDbArgs {
    /// Owner connection, naming the server and database the demo migrates, seeds and serves (a
    /// superuser, or a role with BYPASSRLS and CREATEROLE). Unset: postgres://postgres@127.0.0.1:5432/deskgraph,
    /// or a private cluster when nothing listens there.
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    pub database_admin_url: Option<SecretUrl>,

    /// Runtime connection. Unset: DATABASE_ADMIN_URL's server and database, as DESKGRAPH_APP_ROLE
    /// (with DESKGRAPH_APP_PASSWORD, or a password the demo keeps when DATABASE_ADMIN_URL has one).
    /// Set, it must name that same server and database, as that role.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretUrl>,

    #[command(flatten)]
    pub role: AppRoleArgs,

    #[command(flatten)]
    pub timeout: StatementTimeoutArgs,
}

/// Where the demo runs, once [`resolve`]d.
pub struct Resolved {
    pub db: DbConfig,
    /// The private cluster the demo started (to stop with it).
    pub private: Option<PrivateCluster>,
    /// One line saying where it runs and as whom, for the person who started it.
    pub summary: String,
}

/// A URL someone set: not empty, and not the default (an exported `.env.example` sets the defaults).
fn given<'a>(url: &'a Option<SecretUrl>, default: &str) -> Option<&'a str> {
    url.as_ref()
        .map(SecretUrl::expose)
        .filter(|u| !u.is_empty() && *u != default)
}

/// Decides the owner and runtime connections, probing the owner's server (and starting a private
/// cluster when nothing listens at the default URL).
pub async fn resolve(args: &DemoDbArgs, demo_dir: &Path) -> anyhow::Result<Resolved> {
    let admin_given = given(&args.database_admin_url, DEFAULT_DATABASE_ADMIN_URL);
    let runtime_given = given(&args.database_url, DEFAULT_DATABASE_URL);
    let mut admin_url = admin_given.unwrap_or(DEFAULT_DATABASE_ADMIN_URL).to_owned();
    let mut admin = Target::from_url(&admin_url, "DATABASE_ADMIN_URL")?;
    let role = &args.role.app_role;
    let mut app_password = args.role.app_password.clone();
    if let Some(url) = runtime_given {
        let runtime = Target::from_url(url, "DATABASE_URL")?;
        check_same_database(&runtime, &admin)?;
        if runtime.role() != role {
            bail!(
                "DATABASE_URL logs in as {:?}, but the demo creates and serves as the runtime role \
                 {role:?} (DESKGRAPH_APP_ROLE): unset DATABASE_URL, or make them agree",
                runtime.role()
            );
        }
        // The role gets the password the URL logs in with.
        if let Some(password) = password_of(&runtime)? {
            if app_password.is_empty() {
                app_password = password.into();
            } else if app_password.expose() != password {
                bail!(
                    "DATABASE_URL and DESKGRAPH_APP_PASSWORD give the runtime role {role:?} \
                     different passwords: unset one of them"
                );
            }
        }
    }
    let mut private = None;
    match probe(&admin).await? {
        Probe::Answered => {}
        Probe::NothingListens(why) if admin_given.is_some() || runtime_given.is_some() => {
            bail!(
                "{}: nothing listens there ({why}). Start PostgreSQL there or correct \
                 DATABASE_ADMIN_URL (the demo starts a private cluster only when both \
                 DATABASE_ADMIN_URL and DATABASE_URL are unset)",
                admin.connect_failed()
            );
        }
        Probe::NothingListens(_) => {
            let cluster = cluster::start(demo_dir)?;
            admin_url = cluster.admin_url.clone();
            admin = Target::from_url(&admin_url, "the private cluster's URL")?;
            private = Some(cluster);
        }
    }
    let runtime_url = match runtime_given {
        // (Given, it was checked above; and nothing listening there was an error.)
        Some(url) => url.to_owned(),
        _ => {
            if app_password.is_empty() && password_of(&admin)?.is_some() {
                // A server that wants the owner's password wants the runtime role's too: give the
                // role one, kept for the next run like the JWT secret.
                app_password = super::stored_secret(demo_dir, "app-password")?.into();
            }
            let password = Some(app_password.expose()).filter(|p| !p.is_empty());
            derive_runtime_url(&admin_url, &admin, role, password)?
        }
    };
    let mut summary = format!(
        "The demo runs on PostgreSQL at {} — database {:?}, migrated as {:?}, served as {role:?}.",
        admin.describe(),
        database_of(&admin),
        admin.role(),
    );
    if let Some(cluster) = &private {
        summary = format!(
            "Nothing listens at {DEFAULT_DATABASE_ADMIN_URL}: started a private cluster in {}.\n\
             {summary}",
            cluster.data_dir.display()
        );
    }
    let db = DbConfig {
        database_url: runtime_url.into(),
        database_admin_url: admin_url.into(),
        app_role: role.clone(),
        app_password,
        statement_timeout_ms: args.timeout.statement_timeout_ms,
        ..DbConfig::default()
    };
    Ok(Resolved {
        db,
        private,
        summary,
    })
}

/// What answered at the owner connection.
#[derive(Debug)]
pub enum Probe {
    /// A server that let the owner log in (or refused something `migrate` reports better, such as a
    /// missing database).
    Answered,
    /// Nothing listens there: the connection was refused, or there is no socket file. The only case
    /// in which a private cluster may stand in.
    NothingListens(String),
}

/// Connects once as the owner (to the `postgres` database: the demo's own may not exist yet) and
/// tells what answered. A server that refuses the login, a TLS failure or an unreachable host is an
/// error that names the server, the port and the role.
pub async fn probe(admin: &Target) -> anyhow::Result<Probe> {
    let mut probe = admin.clone();
    probe.config_mut().dbname("postgres");
    if probe.config().get_connect_timeout().is_none() {
        probe
            .config_mut()
            .connect_timeout(std::time::Duration::from_secs(5));
    }
    let err = match probe.connect().await {
        Ok(_) => return Ok(Probe::Answered),
        Err(err) => err,
    };
    let cause = error_chain(&err);
    if let Some(io) = io_cause(&err)
        && matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
        )
    {
        return Ok(Probe::NothingListens(io.to_string()));
    }
    if is_password_refusal(&err) {
        bail!(
            "authentication failed for user {:?} at {} ({cause}): set DATABASE_ADMIN_URL with a \
             password, e.g. postgres://{}:PASSWORD@{}",
            admin.role(),
            admin.describe(),
            admin.role(),
            admin_host_and_database(admin),
        );
    }
    match err.as_db_error() {
        Some(db) if db.code().code().starts_with("28") => Err(anyhow!(
            "PostgreSQL at {} refused role {:?}: {}",
            admin.describe(),
            admin.role(),
            db.message()
        )),
        Some(_) => Ok(Probe::Answered),
        None => Err(anyhow!("{}: {cause}", admin.connect_failed())),
    }
}

/// The I/O error under a connection error, if one is the cause.
fn io_cause(err: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

/// Whether the server wanted a password it did not get, or refused the one it got.
fn is_password_refusal(err: &tokio_postgres::Error) -> bool {
    if err
        .code()
        .is_some_and(|c| *c == tokio_postgres::error::SqlState::INVALID_PASSWORD)
    {
        return true;
    }
    // tokio-postgres stops before answering a password request when the URL has none; it says so
    // only in the text of a configuration error (its error kinds are private).
    std::error::Error::source(err).is_some_and(|cause| cause.to_string() == "password missing")
}

/// `host:port/database` of the owner connection, for the example URL of an error.
fn admin_host_and_database(admin: &Target) -> String {
    format!("{}/{}", admin.addresses(), database_of(admin))
}

/// The database a target connects to (PostgreSQL's default: the role's name).
fn database_of(target: &Target) -> &str {
    target
        .config()
        .get_dbname()
        .unwrap_or_else(|| target.role())
}

/// The password a connection string carries, if any.
fn password_of(target: &Target) -> anyhow::Result<Option<&str>> {
    target
        .config()
        .get_password()
        .map(|p| std::str::from_utf8(p).context("the password is not UTF-8"))
        .transpose()
}

/// Hosts (with their ports) and database of a target, as PostgreSQL would resolve them.
fn location(target: &Target) -> (Vec<(Host, u16)>, Vec<std::net::IpAddr>, &str) {
    let config = target.config();
    (
        crate::db::tls::host_ports(config),
        config.get_hostaddrs().to_vec(),
        database_of(target),
    )
}

/// Refuses a runtime connection to another server or database than the owner's.
fn check_same_database(runtime: &Target, admin: &Target) -> anyhow::Result<()> {
    if location(runtime) == location(admin) {
        return Ok(());
    }
    bail!(
        "DATABASE_URL ({}, database {:?}) and DATABASE_ADMIN_URL ({}, database {:?}) name different \
         servers or databases, but the demo migrates, seeds and serves one database: unset \
         DATABASE_URL (the demo then connects to DATABASE_ADMIN_URL's database as \
         DESKGRAPH_APP_ROLE), or point both at the same one",
        runtime.describe(),
        database_of(runtime),
        admin.describe(),
        database_of(admin),
    )
}

/// The owner's connection string `admin_url`, logging in as `role` (with `password`) instead: the
/// same hosts, ports, database and TLS settings. Checked by parsing it back.
pub fn derive_runtime_url(
    admin_url: &str,
    admin: &Target,
    role: &str,
    password: Option<&str>,
) -> anyhow::Result<String> {
    let database = database_of(admin).to_owned();
    let has_database = admin.config().get_dbname().is_some();
    let url_form = ["postgres://", "postgresql://"]
        .into_iter()
        .find_map(|prefix| Some((prefix, admin_url.strip_prefix(prefix)?)));
    let derived = match url_form {
        Some((prefix, rest)) => {
            // As tokio-postgres reads it, the user info runs to the first `@`.
            let after_login = rest.find('@').map_or(rest, |at| &rest[at + 1..]);
            let mut url = format!("{prefix}{}", percent_encode(role));
            if let Some(password) = password {
                url = format!("{url}:{}", percent_encode(password));
            }
            url = format!("{url}@{after_login}");
            if !has_database {
                let separator = if after_login.contains('?') { '&' } else { '?' };
                url = format!("{url}{separator}dbname={}", percent_encode(&database));
            }
            url
        }
        // libpq's `key=value` form: a later key wins.
        None => {
            let mut conninfo = format!("{admin_url} user={}", quote_value(role));
            if let Some(password) = password {
                conninfo = format!("{conninfo} password={}", quote_value(password));
            }
            if !has_database {
                conninfo = format!("{conninfo} dbname={}", quote_value(&database));
            }
            conninfo
        }
    };
    let check = Target::from_url(&derived, "the runtime URL derived from DATABASE_ADMIN_URL")?;
    if check.role() != role
        || password_of(&check)? != password
        || location(&check) != location(admin)
    {
        bail!(
            "cannot derive the runtime connection from DATABASE_ADMIN_URL ({}); set DATABASE_URL",
            SecretUrl::from(admin_url).redacted()
        );
    }
    Ok(derived)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A `key=value` value, quoted as libpq reads it.
fn quote_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::from_url(url, "TEST").unwrap()
    }

    #[test]
    fn the_runtime_url_is_the_owners_server_and_database_as_the_app_role() {
        for (admin, role, password, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/deskgraph",
                "deskgraph_app",
                None,
                "postgres://deskgraph_app@127.0.0.1:5432/deskgraph",
            ),
            (
                "postgresql://postgres:s3cret@db.example:6000/desk?sslmode=require",
                "app",
                Some("p@ss:w/rd"),
                "postgresql://app:p%40ss%3Aw%2Frd@db.example:6000/desk?sslmode=require",
            ),
            // No database in the URL: PostgreSQL's default (the role's name) is the owner's.
            (
                "postgres://postgres@localhost",
                "app",
                None,
                "postgres://app@localhost?dbname=postgres",
            ),
            (
                "host=127.0.0.1 port=5433 user=postgres password=x dbname=d",
                "app",
                Some("it's"),
                "host=127.0.0.1 port=5433 user=postgres password=x dbname=d user='app' password='it\\'s'",
            ),
        ] {
            let derived = derive_runtime_url(admin, &target(admin), role, password).unwrap();
            assert_eq!(derived, expected);
            let runtime = target(&derived);
            assert_eq!(runtime.role(), role);
            assert_eq!(password_of(&runtime).unwrap(), password);
            check_same_database(&runtime, &target(admin)).unwrap();
        }
    }

    #[test]
    fn a_runtime_url_elsewhere_is_refused_naming_both() {
        let admin = target("postgres://postgres:pw@127.0.0.1:5433/deskgraph");
        for other in [
            "postgres://deskgraph_app@127.0.0.1:5432/deskgraph",
            "postgres://deskgraph_app@127.0.0.2:5433/deskgraph",
            "postgres://deskgraph_app@127.0.0.1:5433/other",
        ] {
            let err = check_same_database(&target(other), &admin).unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains("name different servers or databases"),
                "{text}"
            );
            assert!(text.contains("127.0.0.1:5433"), "{text}");
            assert!(!text.contains("pw"), "{text}");
        }
        // The default port, spelt out or not, is the same port.
        check_same_database(
            &target("postgres://deskgraph_app@127.0.0.1/deskgraph"),
            &target("postgres://postgres@127.0.0.1:5432/deskgraph"),
        )
        .unwrap();
    }

    #[test]
    fn only_a_url_someone_set_counts_as_given() {
        let default = Some(SecretUrl::from(DEFAULT_DATABASE_ADMIN_URL));
        assert_eq!(given(&default, DEFAULT_DATABASE_ADMIN_URL), None);
        assert_eq!(given(&Some("".into()), DEFAULT_DATABASE_ADMIN_URL), None);
        assert_eq!(given(&None, DEFAULT_DATABASE_ADMIN_URL), None);
        let set = Some(SecretUrl::from("postgres://postgres@db/x"));
        assert_eq!(
            given(&set, DEFAULT_DATABASE_ADMIN_URL),
            Some("postgres://postgres@db/x")
        );
    }
}
