//! TLS to PostgreSQL, configured as libpq configures it: `sslmode`, `sslrootcert`, `sslcert`,
//! `sslkey`, `sslsni` and `ssl_min_protocol_version`/`ssl_max_protocol_version` in any connection
//! string (`DATABASE_URL`, `DATABASE_ADMIN_URL`, `DATABASE_LISTEN_URL`).
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers it | not checked |
//! | `require` | always | not checked |
//! | `verify-ca` | always | must chain to `sslrootcert` |
//! | `verify-full` | always | must chain to `sslrootcert` and name the host |
//!
//! As in libpq, a root certificate file (`sslrootcert`, else `~/.postgresql/root.crt` when it
//! exists) makes `allow`/`prefer`/`require` check the chain like `verify-ca`; `sslrootcert=system`
//! means the operating system's trust store and demands `verify-full`. Unlike libpq, `allow` tries
//! TLS first (tokio-postgres has no plain-first mode) and an `sslrootcert` that does not exist is an
//! error in every mode.
//!
//! tokio-postgres itself reads only `disable`, `prefer` and `require` and no certificate settings,
//! so [`Target::from_url`] takes the TLS parameters out of the string ([`conninfo`]), hands the rest
//! to tokio-postgres and builds the rustls configuration they describe.

mod certs;
mod conninfo;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::Arc;

use anyhow::anyhow;
use deadpool_postgres::{Manager, ManagerConfig};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, ClientConfig, SupportedProtocolVersion};
use tokio_postgres::Socket;
use tokio_postgres::config::Host;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use self::certs::{ServerCheck, client_auth, roots};
use self::conninfo::{TlsParams, Version};
use crate::secret::SecretUrl;

/// The crypto provider of every TLS connection to PostgreSQL: the build's one ([`crate::crypto`]),
/// named rather than taken from rustls' process default, which only `serve` and friends install.
fn provider() -> Arc<CryptoProvider> {
    crate::crypto::provider()
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALL: [Self; 6] = [
        Self::Disable,
        Self::Allow,
        Self::Prefer,
        Self::Require,
        Self::VerifyCa,
        Self::VerifyFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == value)
    }

    fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }

    fn for_tokio_postgres(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self {
            Self::Disable => Pg::Disable,
            Self::Allow | Self::Prefer => Pg::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Pg::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stream of a TLS connection to PostgreSQL.
pub type TlsStream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

/// A connection opened by [`Target::connect`]; it must be polled (spawned) for its client to work.
pub type Connection = tokio_postgres::Connection<Socket, TlsStream>;

/// A PostgreSQL server to connect to: tokio-postgres' settings and the TLS they call for. Every
/// connection deskgraph makes goes through one (the pool, `migrate`, `LISTEN`, the demo's probe).
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    tls: MakeTls,
}

impl Target {
    /// Reads a connection string (a `postgres://` URL or libpq's `key=value` form) given in
    /// `setting`. Errors name the setting and show the string with its password masked; they are
    /// configuration errors, so they come at start-up, before any connection is tried.
    pub fn from_url(url: &str, setting: &str) -> anyhow::Result<Self> {
        Self::parse(url)
            .map_err(|why| anyhow!("{setting} ({}) {why}", SecretUrl::from(url).redacted()))
    }

    fn parse(url: &str) -> Result<Self, String> {
        let split = conninfo::split(url)
            .map_err(|why| format!("is not a valid PostgreSQL connection string: {why}"))?;
        let mut config = tokio_postgres::Config::from_str(&split.rest).map_err(|err| {
            format!(
                "is not a valid PostgreSQL connection string: {}",
                error_chain(&err)
            )
        })?;
        let params = TlsParams::read(&split.tls)?;
        let system = params.root_cert.as_deref() == Some("system");
        let mode = match params.mode {
            Some(mode) => mode,
            // The system's roots vouch for whoever controls a domain, so with them only the host
            // name check means anything (libpq's rule).
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
        };
        if system && mode != SslMode::VerifyFull {
            return Err(format!(
                "has the weak sslmode \"{mode}\", which may not be used with sslrootcert=system \
                 (use \"verify-full\")"
            ));
        }
        config.ssl_mode(mode.for_tokio_postgres());
        let tls = MakeTls::new(mode, &params, servers(&config))?;
        Ok(Self { config, tls })
    }

    /// tokio-postgres' settings. Hosts, ports and the TLS settings belong to the connection string;
    /// change the rest (application name, database, timeouts, keepalives) here.
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.tls.about.mode
    }

    /// `host:port, …` and the `sslmode`, for logs and errors (never a password).
    pub fn describe(&self) -> String {
        format!("{} (sslmode={})", self.addresses(), self.ssl_mode())
    }

    /// `host:port, …` (or the `hostaddr`s when there is no host name).
    pub fn addresses(&self) -> String {
        let servers: Vec<String> = self
            .tls
            .about
            .servers
            .iter()
            .map(|(host, port)| server_name(host, *port))
            .collect();
        if servers.is_empty() {
            let addrs: Vec<String> = self
                .config
                .get_hostaddrs()
                .iter()
                .map(ToString::to_string)
                .collect();
            addrs.join(", ")
        } else {
            servers.join(", ")
        }
    }

    /// The role this target logs in as (`?` when the connection string names none).
    pub fn role(&self) -> &str {
        self.config.get_user().unwrap_or("?")
    }

    /// What a failed connection to this target is reported as: where, as whom, and with which
    /// `sslmode` (never a password). Every connection error deskgraph reports starts with it.
    pub fn connect_failed(&self) -> String {
        format!(
            "could not connect to PostgreSQL at {} as role {:?}",
            self.describe(),
            self.role()
        )
    }

    /// Opens one connection.
    pub async fn connect(
        &self,
    ) -> Result<(tokio_postgres::Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// A deadpool manager opening connections to this target.
    pub fn pool_manager(&self, manager: ManagerConfig) -> Manager {
        Manager::from_config(self.config.clone(), self.tls.clone(), manager)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Target").field(&self.describe()).finish()
    }
}

/// The hosts of `config` with their ports, paired as tokio-postgres pairs them (a port per host, or
/// one for all, or 5432).
pub fn host_ports(config: &tokio_postgres::Config) -> Vec<(Host, u16)> {
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            (host.clone(), port)
        })
        .collect()
}

/// The TCP hosts of `config` with their ports.
fn servers(config: &tokio_postgres::Config) -> Vec<(String, u16)> {
    host_ports(config)
        .into_iter()
        .filter_map(|(host, port)| match host {
            Host::Tcp(host) => Some((host, port)),
            #[cfg(unix)]
            Host::Unix(_) => None,
        })
        .collect()
}

fn server_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `err` and its causes, `: `-separated (tokio-postgres' errors show their cause only as a source).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a handshake error needs to say where and under which rules it failed.
struct About {
    mode: SslMode,
    /// The roots the chain is checked against (`None`: the certificate is not checked).
    roots: Option<String>,
    servers: Vec<(String, u16)>,
}

/// tokio-postgres-rustls does the handshake and the `tls-server-end-point` channel binding; this
/// wrapper makes its errors name the server and the rules, which neither it nor tokio-postgres do.
#[derive(Clone)]
pub struct MakeTls {
    inner: MakeRustlsConnect,
    about: Arc<About>,
}

impl MakeTls {
    fn new(mode: SslMode, params: &TlsParams, servers: Vec<(String, u16)>) -> Result<Self, String> {
        let provider = provider();
        let home = std::env::var_os("HOME").map(PathBuf::from);
        // As libpq: no certificate files are read when TLS is off.
        let (roots, client_auth) = if mode == SslMode::Disable {
            (None, None)
        } else {
            (
                roots(mode, params.root_cert.as_deref(), home.as_deref())?,
                client_auth(params, home.as_deref())?,
            )
        };
        let (roots, roots_label) = match roots {
            Some((store, label)) => (Some(Arc::new(store)), Some(label)),
            None => (None, None),
        };
        let check = ServerCheck {
            roots,
            name: mode == SslMode::VerifyFull,
            algorithms: provider.signature_verification_algorithms,
        };
        let versions = versions(params.min_version, params.max_version)?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|err| format!("asks for TLS settings rustls refuses: {err}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(check));
        let mut config = match client_auth {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|err| format!("has a client certificate or key rustls refuses: {err}"))?,
            None => builder.with_no_client_auth(),
        };
        config.enable_sni = params.sni;
        // What libpq 17 sends; required by servers accepting `sslnegotiation=direct`.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            inner: MakeRustlsConnect::new(config),
            about: Arc::new(About {
                mode,
                roots: roots_label,
                servers,
            }),
        })
    }
}

impl MakeTlsConnect<Socket> for MakeTls {
    type Stream = TlsStream;
    type TlsConnect = Handshake;
    type Error = std::convert::Infallible;

    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, Self::Error> {
        let inner = MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, host)?;
        let port = self
            .about
            .servers
            .iter()
            .find(|(h, _)| h == host)
            .map_or(5432, |(_, port)| *port);
        Ok(Handshake {
            inner,
            server: server_name(host, port),
            about: self.about.clone(),
        })
    }
}

/// One TLS handshake with one server.
pub struct Handshake {
    inner: <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect,
    server: String,
    about: Arc<About>,
}

impl TlsConnect<Socket> for Handshake {
    type Stream = TlsStream;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream, HandshakeError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let Self {
            inner,
            server,
            about,
        } = self;
        Box::pin(async move {
            inner.connect(stream).await.map_err(|err| HandshakeError {
                why: why(&err, about.roots.as_deref()),
                server,
                mode: about.mode,
            })
        })
    }
}

/// A failed TLS handshake: the server, the `sslmode` and why (no password has been sent yet).
#[derive(Debug, thiserror::Error)]
#[error("{server} (sslmode={mode}): {why}")]
pub struct HandshakeError {
    server: String,
    mode: SslMode,
    why: String,
}

fn why(err: &io::Error, roots: Option<&str>) -> String {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => format!(
            "invalid peer certificate: not issued by a CA in {}",
            roots.unwrap_or("the trusted roots")
        ),
        _ => err.to_string(),
    }
}

/// The TLS versions between libpq's minimum (default TLSv1.2) and maximum that rustls speaks.
fn versions(
    min: Option<Version>,
    max: Option<Version>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let min = min.unwrap_or(Version::Tls12);
    let versions: Vec<_> = [
        (Version::Tls12, &rustls::version::TLS12),
        (Version::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(version, _)| *version >= min && max.is_none_or(|max| *version <= max))
    .map(|(_, version)| version)
    .collect();
    if versions.is_empty() {
        return Err(
            "has ssl_min_protocol_version/ssl_max_protocol_version leaving out TLSv1.2 and \
             TLSv1.3, the versions deskgraph speaks"
                .to_owned(),
        );
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(url: &str) -> String {
        format!("{:#}", Target::from_url(url, "DATABASE_URL").unwrap_err())
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_maps_onto_tokio_postgres() {
        let target = Target::from_url("postgres://u@h/db", "DATABASE_URL").unwrap();
        assert_eq!(target.ssl_mode(), SslMode::Prefer);
        assert_eq!(
            target.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        let target = Target::from_url("host=h sslmode=verify-ca sslrootcert=system", "X");
        assert!(target.is_err());
        let target = Target::from_url("host=h sslmode=disable", "X").unwrap();
        assert_eq!(
            target.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        assert_eq!(target.describe(), "h:5432 (sslmode=disable)");
    }

    #[test]
    fn a_bad_sslmode_names_the_setting_and_hides_the_password() {
        let err = error("postgres://app:hunter2@db.example/app?sslmode=verify_full");
        assert!(
            err.starts_with("DATABASE_URL (postgres://app:***@db.example/app"),
            "{err}"
        );
        assert!(err.contains("invalid sslmode \"verify_full\""), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = error("host=db password=hunter2 sslmode=sometimes");
        assert!(err.contains("invalid sslmode \"sometimes\""), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn verifying_without_a_root_certificate_is_refused_up_front() {
        let err = error("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert!(
            err.contains("\"/nonexistent/ca.pem\", which cannot be read"),
            "{err}"
        );
        let err = error("postgres://h/db?sslmode=require&sslrootcert=system");
        assert!(err.contains("weak sslmode \"require\""), "{err}");
    }

    #[test]
    fn other_parameters_reach_tokio_postgres() {
        let target = Target::from_url(
            "postgres://u@h:6543/db?sslmode=require&connect_timeout=4&application_name=a",
            "DATABASE_URL",
        )
        .unwrap();
        assert_eq!(
            target.config().get_connect_timeout(),
            Some(&std::time::Duration::from_secs(4))
        );
        assert_eq!(target.config().get_application_name(), Some("a"));
        assert_eq!(target.describe(), "h:6543 (sslmode=require)");
        let err = error("postgres://h/db?sslmode=require&frobnicate=1");
        assert!(err.contains("unknown option `frobnicate`"), "{err}");
    }

    #[test]
    fn only_tls_versions_rustls_speaks_can_be_chosen() {
        assert_eq!(versions(None, None).unwrap().len(), 2);
        assert_eq!(versions(Some(Version::Tls13), None).unwrap().len(), 1);
        assert!(versions(None, Some(Version::Tls11)).is_err());
    }
}
