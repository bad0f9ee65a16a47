//! The pages a browser gets: GraphiQL at `GET /graphql` (a browser asking without parameters, see
//! [`super::protocol::accepts_html`]), a landing page at `GET /`, the SDL at `GET /schema.graphql`,
//! and their assets.
//!
//! The assets are compiled into the binary (`src/http/graphiql/`: GraphiQL and React as published on
//! npm, at the versions its README pins, beside the page's own script and stylesheet), so GraphiQL
//! works without a network. Each is served at `/assets/{hash}/{name}`, the hash being its content's,
//! and so may be cached for good (`immutable`); gzipped for clients that take it. The pages load
//! nothing from another origin and carry no inline script: their CSP allows this origin only.
//!
//! GraphiQL reads its settings (endpoint, example query, and in `deskgraph demo` the seeded users it
//! opens signed in as) from a JSON data block in the page, which `deskgraph-graphiql.js` starts it
//! with.

use std::io::Write as _;
use std::sync::{LazyLock, OnceLock};

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::secret::Secret;

/// What the GraphiQL page opens with. `serve` leaves it empty: the page then carries no credentials
/// and says where to put them. `deskgraph demo` hands it its seeded users ([`Self::sign_in_as`]).
#[derive(Debug, Default)]
pub struct GraphiqlSettings {
    users: OnceLock<Vec<GraphiqlUser>>,
}

/// An identity the GraphiQL page offers: the headers it sends as this user (over HTTP, and as the
/// websocket's `connection_init` payload).
#[derive(Debug, Clone)]
pub struct GraphiqlUser {
    /// What the page's picker shows, e.g. `Olivia Bennett — owner of acme`.
    pub label: String,
    /// A bearer token (`Authorization: Bearer …`).
    pub token: Secret,
    /// The organization it works in (`x-org-id`).
    pub org_id: Uuid,
}

impl GraphiqlSettings {
    /// Makes the page open signed in as `users[0]`, with a picker for the others. Only for a server
    /// whose every visitor may have these tokens (`deskgraph demo` on this machine): the page hands
    /// them to anyone who loads it. Set once, before serving.
    pub fn sign_in_as(&self, users: Vec<GraphiqlUser>) -> anyhow::Result<()> {
        self.users
            .set(users)
            .map_err(|_| anyhow::anyhow!("GraphiQL's users were already set"))
    }

    /// The users the page offers; none (the page signs in as nobody) unless [`Self::sign_in_as`] set
    /// some.
    pub fn users(&self) -> &[GraphiqlUser] {
        self.users.get().map(Vec::as_slice).unwrap_or_default()
    }
}

/// GraphiQL: scripts and styles from this origin only, no inline script; fonts and icons inlined in
/// its stylesheet as `data:` URLs; requests and websockets to this origin (`connect-src` comes last:
/// [`graphiql_csp`] adds the websocket origin to it).
///
/// `style-src` needs no `'unsafe-inline'`: GraphiQL styles elements through the CSSOM, which CSP
/// leaves alone. Its one `<style>` element is the scroll lock its dialogs add (react-remove-scroll-bar:
/// `body[data-scroll-locked]{overflow:hidden …}`, with a scrollbar gap that is 0 on this page, which
/// never scrolls); the hash allows exactly that text. Another GraphiQL version may change it: the
/// browser test (`tests/it/browser.rs`) fails on any CSP violation, and blocking it is harmless.
const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'sha256-nzTgYzXYDNe6BAHiiI7NNlfK8n/auuOAhh2t92YvuXo='; \
    img-src 'self' data:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'; connect-src 'self'";

/// The landing page: a stylesheet from this origin, nothing else.
const LANDING_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Assets never change under their URL (the path names their content's hash).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The query a new GraphiQL tab starts with when the page signs in as nobody.
const QUERY_SIGNED_OUT: &str = r#"# Welcome to deskgraph's GraphiQL.
#
# Every request needs credentials. Open the Headers tab below and put in
#
#   {"Authorization": "Bearer <token>", "x-org-id": "<organization id>"}
#
# (x-org-id chooses the organization; `viewer` works without it), then load the
# docs with the "Re-fetch GraphQL schema" button on the left. Subscriptions go
# over a websocket to the same endpoint, with these headers as connection_init.

{ viewer { user { name } organization { name } role } }
"#;

/// The query a new GraphiQL tab starts with when the page signs in as a demo user.
const QUERY_SIGNED_IN: &str = r#"# Signed in as a seeded demo user: another one can be picked at the top right.
# Run with Ctrl-Enter (or the ▶ button). The docs are on the left.
#
# The 20 newest open tickets, with what a list view needs.
{
  tickets(first: 20, filter: { status: OPEN }) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { number title priority workspace { name } assignee { name } commentCount } }
  }
}
"#;

/// A file the pages use, as compiled in.
struct File {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const FILES: &[File] = &[
    File {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("graphiql/react.production.min.js"),
    },
    File {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("graphiql/react-dom.production.min.js"),
    },
    File {
        name: "graphiql.min.js",
        content_type: JS,
        bytes: include_bytes!("graphiql/graphiql.min.js"),
    },
    File {
        name: "graphiql.min.css",
        content_type: CSS,
        bytes: include_bytes!("graphiql/graphiql.min.css"),
    },
    File {
        name: "deskgraph-graphiql.js",
        content_type: JS,
        bytes: include_bytes!("graphiql/deskgraph-graphiql.js"),
    },
    File {
        name: "deskgraph.css",
        content_type: CSS,
        bytes: include_bytes!("graphiql/deskgraph.css"),
    },
];

/// The SDL, as committed (`tests/it/schema.rs` keeps it equal to the schema the server runs).
const SDL: &str = include_str!("../../schema/schema.graphql");

/// A file as served: under the hash of its content, gzipped once, on first demand.
struct Asset {
    file: &'static File,
    hash: String,
    gzip: OnceLock<Vec<u8>>,
}

impl Asset {
    fn path(&self) -> String {
        format!("/assets/{}/{}", self.hash, self.file.name)
    }

    fn gzipped(&self) -> &[u8] {
        self.gzip.get_or_init(|| {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            // Writing to a Vec cannot fail; should it, the plain file is served instead.
            match encoder
                .write_all(self.file.bytes)
                .and_then(|()| encoder.finish())
            {
                Ok(gz) => gz,
                Err(err) => {
                    tracing::warn!(error = %err, asset = self.file.name, "cannot gzip an asset");
                    Vec::new()
                }
            }
        })
    }
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|file| Asset {
            file,
            // 64 bits of the sha256: enough to tell versions apart, short in a URL.
            hash: hex::encode(&Sha256::digest(file.bytes)[..8]),
            gzip: OnceLock::new(),
        })
        .collect()
});

/// The URL path of the asset `name` (one of [`FILES`]).
fn asset(name: &str) -> String {
    ASSETS
        .iter()
        .find(|a| a.file.name == name)
        .map(Asset::path)
        .unwrap_or_default()
}

/// `GET /assets/{hash}/{name}`: an embedded file, if `hash` is its content's (else 404: a URL never
/// names other content than it did, which is what lets browsers keep it).
pub(super) async fn serve_asset(
    Path((hash, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = ASSETS
        .iter()
        .find(|a| a.file.name == name && a.hash == hash)
    else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = if accepts_gzip(&headers) {
        // The first request of each asset compresses it (off the async workers: a megabyte of
        // GraphiQL takes a while in a debug build).
        let gz = match tokio::task::spawn_blocking(move || asset.gzipped()).await {
            Ok(gz) => gz,
            Err(_) => &[],
        };
        if gz.is_empty() {
            asset.file.bytes.into_response()
        } else {
            ([(header::CONTENT_ENCODING, "gzip")], gz).into_response()
        }
    } else {
        asset.file.bytes.into_response()
    };
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.file.content_type),
    );
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// Whether `Accept-Encoding` takes gzip: named with a quality above 0, or not named and `*` is.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None, None);
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case("gzip") {
            gzip = Some(quality);
        } else if name == "*" {
            any = Some(quality);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

/// [`GRAPHIQL_CSP`] with this origin's websocket origin in `connect-src` (`'self'` covers `ws:` and
/// `wss:` in CSP 3, but not in every browser), taken from `Host` when it is a plain `host[:port]`.
fn graphiql_csp(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':' | b'[' | b']')
                })
        });
    match host {
        Some(host) => format!("{GRAPHIQL_CSP} ws://{host} wss://{host}"),
        None => GRAPHIQL_CSP.to_owned(),
    }
}

/// JSON to put inside a `<script>` element: `<`, `>` and `&` escaped, so no value can end it.
fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The GraphiQL page. It talks to `/graphql`, over HTTP and (subscriptions) a websocket.
pub(super) fn graphiql_page(settings: &GraphiqlSettings, headers: &HeaderMap) -> Response {
    let users: Vec<_> = settings
        .users()
        .iter()
        .map(|u| {
            json!({
                "label": u.label,
                "headers": {
                    "Authorization": format!("Bearer {}", u.token.expose()),
                    "x-org-id": u.org_id,
                },
            })
        })
        .collect();
    let query = if users.is_empty() {
        QUERY_SIGNED_OUT
    } else {
        QUERY_SIGNED_IN
    };
    let settings = script_json(&json!({
        "endpoint": "/graphql",
        "query": query,
        "users": users,
    }));
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deskgraph · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{graphiql_css}">
<link rel="stylesheet" href="{page_css}">
<script defer src="{react}"></script>
<script defer src="{react_dom}"></script>
<script defer src="{graphiql_js}"></script>
<script defer src="{page_js}"></script>
<script type="application/json" id="graphiql-settings">{settings}</script>
</head>
<body class="graphiql-page">
<div id="graphiql">Loading…</div>
</body>
</html>
"#,
        graphiql_css = asset("graphiql.min.css"),
        page_css = asset("deskgraph.css"),
        react = asset("react.production.min.js"),
        react_dom = asset("react-dom.production.min.js"),
        graphiql_js = asset("graphiql.min.js"),
        page_js = asset("deskgraph-graphiql.js"),
    );
    let csp = HeaderValue::from_str(&graphiql_csp(headers))
        .unwrap_or_else(|_| HeaderValue::from_static(GRAPHIQL_CSP));
    ([(header::CONTENT_SECURITY_POLICY, csp)], Html(html)).into_response()
}

/// `GET /`: what this server is and where to go from here.
pub(super) async fn landing() -> Response {
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deskgraph</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{page_css}">
</head>
<body class="landing">
<main>
<h1>deskgraph</h1>
<p>A GraphQL backend for AI-assisted, multi-tenant support desks: organizations, members and roles,
workspaces, tickets and comments, AI triage paid with credits, analytics, an audit trail, and a live
desk over websockets. Tenant isolation is enforced by PostgreSQL itself: every operation runs in a
transaction that carries the caller's organization, user and role, and row-level-security policies do
the rest.</p>
<ul>
<li><a href="/graphql">GraphiQL</a> — explore and run the API (<code>POST /graphql</code>; <code>GET</code>
for queries; subscriptions over a websocket on the same path). Send <code>Authorization: Bearer &lt;token&gt;</code>
and <code>x-org-id: &lt;organization id&gt;</code>.</li>
<li><a href="/schema.graphql">/schema.graphql</a> — the schema (SDL), with every type and field described</li>
<li><a href="/healthz">/healthz</a> — liveness</li>
<li><a href="/readyz">/readyz</a> — readiness (the database answers)</li>
<li><a href="/metrics">/metrics</a> — Prometheus metrics</li>
</ul>
<p>deskgraph {version}</p>
</main>
</body>
</html>
"#,
        page_css = asset("deskgraph.css"),
        version = env!("CARGO_PKG_VERSION"),
    );
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(LANDING_CSP),
        )],
        Html(html),
    )
        .into_response()
}

/// `GET /schema.graphql`: the schema's SDL, as text a browser shows.
pub(super) async fn schema_sdl() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        SDL,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: axum::http::HeaderName, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn gzip_is_taken_when_named_or_starred_with_a_quality_above_zero() {
        let takes = |v| accepts_gzip(&with(header::ACCEPT_ENCODING, v));
        assert!(takes("gzip, deflate, br"));
        assert!(takes("br;q=1.0, GZIP;q=0.5"));
        assert!(takes("*"));
        assert!(!takes("gzip;q=0"));
        assert!(!takes("br, deflate"));
        assert!(!takes("gzip;q=0, *"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn the_websocket_origin_comes_from_a_plain_host_only() {
        let csp = graphiql_csp(&with(header::HOST, "127.0.0.1:8080"));
        assert!(csp.ends_with("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"));
        let csp = graphiql_csp(&with(header::HOST, "evil; script-src *"));
        assert!(csp.ends_with("connect-src 'self'"), "{csp}");
        assert!(!csp.contains("evil"));
    }

    #[test]
    fn settings_json_cannot_close_its_script_element() {
        let text = script_json(&json!({"label": "</script><script>alert(1)</script> & co"}));
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(
            back["label"], "</script><script>alert(1)</script> & co",
            "{text}"
        );
    }

    #[test]
    fn every_asset_has_its_own_hash_and_path() {
        let paths: std::collections::HashSet<_> = ASSETS.iter().map(Asset::path).collect();
        assert_eq!(paths.len(), FILES.len());
        for a in ASSETS.iter() {
            assert!(asset(a.file.name).starts_with("/assets/"));
            assert!(!a.file.bytes.is_empty(), "{}", a.file.name);
        }
    }
}
