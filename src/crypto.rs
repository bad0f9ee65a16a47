//! The one TLS crypto provider of the build, ring, for every TLS client: PostgreSQL connections
//! (`db::tls`), HTTPS to the model API and to the identity provider's JWKS (reqwest), and Qdrant
//! (tonic, built with its `tls-ring` feature). reqwest is built without a provider of its own
//! (`rustls-no-provider`), so it uses rustls' process-wide default, which [`install`] sets.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The provider, for configurations that name theirs.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring rustls' process-wide default provider (idempotent): called before any HTTPS client
/// is built, since a reqwest client built without one panics.
pub fn install() {
    // Err means a default is already installed (by an earlier call), which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
