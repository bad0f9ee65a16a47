//! What is trusted and what is shown: the roots a server's certificate must chain to, the check
//! of that certificate for each `sslmode`, and the client certificate.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::SslMode;
use super::conninfo::TlsParams;

/// The check of the server's certificate for every mode: nothing without roots (`prefer`,
/// `require`), the chain (`verify-ca`, or any mode with a root certificate file), the chain and
/// the host name (`verify-full`). The handshake's signatures are always verified, so the server
/// holds the key of the certificate it shows.
#[derive(Debug)]
pub(super) struct ServerCheck {
    pub roots: Option<Arc<RootCertStore>>,
    pub name: bool,
    pub algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The roots the server's chain is checked against, with how to name them in errors; `None`: the
/// certificate is not checked.
pub(super) fn roots(
    mode: SslMode,
    setting: Option<&str>,
    home: Option<&Path>,
) -> Result<Option<(RootCertStore, String)>, String> {
    match setting {
        Some("system") => system_roots().map(Some),
        Some(path) => load_roots(Path::new(path)).map(Some),
        None => match home.map(|home| home.join(".postgresql/root.crt")) {
            Some(default) if default.exists() => load_roots(&default).map(Some),
            default if mode.verifies() => Err(format!(
                "has sslmode={mode} without sslrootcert, and the default root certificate file {} \
                 does not exist: provide the file, use the system's trusted roots with \
                 sslrootcert=system, or choose an sslmode that does not verify the server",
                default.map_or("~/.postgresql/root.crt".to_owned(), |path| format!(
                    "\"{}\"",
                    path.display()
                )),
            )),
            _ => Ok(None),
        },
    }
}

fn load_roots(path: &Path) -> Result<(RootCertStore, String), String> {
    let mut store = RootCertStore::empty();
    for cert in read_certs(path, "root certificate")? {
        store.add(cert).map_err(|err| {
            format!(
                "names root certificate file \"{}\", which holds a certificate rustls refuses: {err}",
                path.display()
            )
        })?;
    }
    Ok((store, format!("sslrootcert \"{}\"", path.display())))
}

fn system_roots() -> Result<(RootCertStore, String), String> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(found.certs);
    if store.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "has sslrootcert=system, but the system trust store holds no usable certificate ({})",
            errors.join("; ")
        ));
    }
    Ok((store, "the system trust store".to_owned()))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let unreadable = |err: &dyn fmt::Display| {
        format!(
            "names {what} file \"{}\", which cannot be read: {err}",
            path.display()
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| unreadable(&err))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| unreadable(&err))?;
    if certs.is_empty() {
        return Err(format!(
            "names {what} file \"{}\", which holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// The client certificate and key: `sslcert`/`sslkey`, else `~/.postgresql/postgresql.crt` and
/// `.key` when the certificate exists (libpq's defaults).
pub(super) fn client_auth(
    params: &TlsParams,
    home: Option<&Path>,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    let default_dir = home.map(|home| home.join(".postgresql"));
    let cert = match &params.cert {
        Some(path) => path.clone(),
        None => match default_dir.as_ref().map(|dir| dir.join("postgresql.crt")) {
            Some(path) if path.exists() => path,
            _ => return Ok(None),
        },
    };
    let certs = read_certs(&cert, "client certificate")?;
    let key = match (&params.key, &default_dir) {
        (Some(path), _) => path.clone(),
        (None, Some(dir)) => dir.join("postgresql.key"),
        (None, None) => return Err("has a client certificate but no sslkey".to_owned()),
    };
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|err| {
        format!(
            "names client key file \"{}\", which cannot be read: {err}",
            key.display()
        )
    })?;
    Ok(Some((certs, key)))
}
