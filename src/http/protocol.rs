//! GraphQL over HTTP (<https://graphql.github.io/graphql-over-http/draft/>): the media type a response
//! is sent as, which bodies and query strings are GraphQL requests, and the status and body an
//! [`Outcome`] gets in each media type.
//!
//! Statuses follow the draft as graphql-http's conformance audit checks it
//! (`tests/graphql-http`): with `application/graphql-response+json` a GraphQL request error (the
//! document does not parse or validate, the variables do not coerce, the operation named is not in the
//! document) is 400; with `application/json` it is 200. Either way such a response has no `data`, and
//! a field error during execution is 200.

use std::collections::BTreeMap;

use async_graphql::{Extensions, Request, ServerError, Value, Variables};
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};

use crate::schema::executor::Outcome;

/// The media types a GraphQL response can be sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json`: the status tells a request error (400) from an executed
    /// operation (200), so intermediaries and logs can tell them apart too.
    GraphQLResponse,
    /// `application/json`, for clients that predate the above: every GraphQL response is 200.
    Json,
}

/// One element of an `Accept` header: `type/subtype`, lower-cased, and its quality in thousandths.
struct Range {
    ty: String,
    subtype: String,
    quality: u16,
}

impl Range {
    /// How specifically the range names `ty/subtype` (2 exactly, 1 as `ty/*`, 0 as `*/*`), if at all.
    fn specificity(&self, ty: &str, subtype: &str) -> Option<u8> {
        match (self.ty.as_str(), self.subtype.as_str()) {
            ("*", "*") => Some(0),
            (t, "*") if t == ty => Some(1),
            (t, s) if t == ty && s == subtype => Some(2),
            _ => None,
        }
    }
}

/// The ranges of every `Accept` header. An element with a `charset` other than UTF-8 (the only one
/// this server writes) or with an unreadable `q` names nothing it could be sent.
fn accept_ranges(headers: &HeaderMap) -> Vec<Range> {
    let mut ranges = vec![];
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            let mut parts = element.split(';');
            let Some((ty, subtype)) = parts.next().and_then(|r| r.trim().split_once('/')) else {
                continue;
            };
            let mut quality = Some(1000);
            for param in parts {
                let Some((name, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                if name.trim().eq_ignore_ascii_case("q") {
                    quality = parse_quality(value);
                } else if name.trim().eq_ignore_ascii_case("charset")
                    && !value.eq_ignore_ascii_case("utf-8")
                {
                    quality = None;
                }
            }
            if let Some(quality) = quality {
                ranges.push(Range {
                    ty: ty.trim().to_ascii_lowercase(),
                    subtype: subtype.trim().to_ascii_lowercase(),
                    quality,
                });
            }
        }
    }
    ranges
}

/// A `q` value (`0` to `1`, at most three decimals) in thousandths.
fn parse_quality(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

impl MediaType {
    const GRAPHQL_RESPONSE: &str = "application/graphql-response+json; charset=utf-8";
    const JSON: &str = "application/json; charset=utf-8";

    /// The `Content-Type` of a response sent as this media type.
    pub fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphQLResponse => Self::GRAPHQL_RESPONSE,
            Self::Json => Self::JSON,
        })
    }

    /// The media type to answer a request with these headers in: the one its `Accept` rates higher
    /// (RFC 9110: the most specific range naming a type gives its quality). At equal quality
    /// `application/graphql-response+json` when the client named it, else `application/json`, which
    /// is also the answer to `*/*` and to a request without `Accept` (older clients send either and
    /// expect JSON). `None` when `Accept` allows neither: 406.
    pub fn negotiate(headers: &HeaderMap) -> Option<Self> {
        let ranges = accept_ranges(headers);
        if ranges.is_empty()
            && headers
                .get_all(header::ACCEPT)
                .iter()
                .all(|v| v.as_bytes().iter().all(u8::is_ascii_whitespace))
        {
            return Some(Self::Json);
        }
        let rate = |subtype: &str| {
            ranges
                .iter()
                .filter_map(|r| Some((r.specificity("application", subtype)?, r.quality)))
                .max_by_key(|(specificity, _)| *specificity)
                .unwrap_or((0, 0))
        };
        let (graphql_specificity, graphql) = rate("graphql-response+json");
        let (_, json) = rate("json");
        if graphql == 0 && json == 0 {
            None
        } else if graphql > json || (graphql == json && graphql_specificity == 2) {
            Some(Self::GraphQLResponse)
        } else {
            Some(Self::Json)
        }
    }
}

/// Whether the request's `Accept` names `text/html` (a browser: GraphiQL).
pub fn accepts_html(headers: &HeaderMap) -> bool {
    accept_ranges(headers)
        .iter()
        .any(|r| r.specificity("text", "html") == Some(2) && r.quality > 0)
}

/// Whether a POST's `Content-Type` is `application/json` (in UTF-8, if it names a charset): the only
/// request body this server reads. Anything else (form posts, `text/plain`, none at all) is 415.
pub fn is_json_body(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    parts
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
        && parts.all(|param| match param.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            _ => true,
        })
}

/// Why a request is not a GraphQL request at all (400 in either media type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAGraphQLRequest(pub &'static str);

/// The parameters of a GraphQL request. `null` is the same as absent; a value of the wrong type
/// (`"variables": "x"`, `"operationName": 0`) makes the request not a GraphQL request.
#[derive(Deserialize)]
struct Params {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Variables,
    #[serde(default)]
    extensions: Extensions,
}

impl Params {
    fn into_request(self) -> Result<Request, NotAGraphQLRequest> {
        let query = match self.query {
            Some(query) => query,
            // A registered operation named by its hash needs no text (schema::persisted).
            None if self.extensions.0.contains_key("persistedQuery") => String::new(),
            None => {
                return Err(NotAGraphQLRequest(
                    "the request has no `query` (nor an `extensions.persistedQuery` naming a registered operation)",
                ));
            }
        };
        let mut request = Request::new(query).variables(self.variables);
        request.operation_name = self.operation_name;
        request.extensions = self.extensions;
        Ok(request)
    }
}

/// The GraphQL request in a POST body (`application/json`; batches are not supported).
pub fn request_from_body(body: &[u8]) -> Result<Request, NotAGraphQLRequest> {
    match serde_json::from_slice::<Params>(body) {
        Ok(params) => params.into_request(),
        Err(err) if err.is_syntax() || err.is_eof() => {
            Err(NotAGraphQLRequest("the request body is not valid JSON"))
        }
        Err(_) => Err(NotAGraphQLRequest(
            "request body must be a JSON object with a `query` (and optional `variables`, `operationName`, `extensions`); batches are not supported",
        )),
    }
}

/// The GraphQL request in a GET's query string: `query` and `operationName` as they are,
/// `variables` and `extensions` as JSON objects.
pub fn request_from_query_string(uri: &Uri) -> Result<Request, NotAGraphQLRequest> {
    #[derive(Deserialize)]
    struct GetParams {
        query: Option<String>,
        #[serde(rename = "operationName")]
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    fn json_object<T: for<'de> Deserialize<'de> + Default>(
        text: Option<&str>,
        name: &'static str,
    ) -> Result<T, NotAGraphQLRequest> {
        text.map_or(Ok(T::default()), |text| {
            serde_json::from_str(text).map_err(|_| NotAGraphQLRequest(name))
        })
    }
    let Query(params) = Query::<GetParams>::try_from_uri(uri).map_err(|_| {
        NotAGraphQLRequest("could not read the GraphQL GET parameters (`query`, `operationName`, `variables`, `extensions`)")
    })?;
    Params {
        variables: json_object(
            params.variables.as_deref(),
            "the `variables` parameter must be a JSON object",
        )?,
        extensions: json_object(
            params.extensions.as_deref(),
            "the `extensions` parameter must be a JSON object",
        )?,
        query: params.query,
        operation_name: params.operation_name,
    }
    .into_request()
}

/// A response body: async-graphql's fields, in its order (a cached response's `ETag` is over these
/// bytes), but no `data` for an operation that never ran — a request error, or a request refused as a
/// whole — as GraphQL asks ("if an error was raised before execution begins, the data entry should not
/// be present") and `application/graphql-response+json` requires of every 4xx and 5xx.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [ServerError],
}

/// The status and body of `outcome` sent as `media`.
pub fn render(outcome: &Outcome, media: MediaType) -> (StatusCode, Vec<u8>) {
    let status = match media {
        MediaType::GraphQLResponse if outcome.request_error => StatusCode::BAD_REQUEST,
        _ => outcome.status,
    };
    let ran = !outcome.request_error && outcome.status.is_success();
    let body = Body {
        data: ran.then_some(&outcome.response.data),
        extensions: &outcome.response.extensions,
        errors: &outcome.response.errors,
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => (status, bytes),
        Err(err) => {
            tracing::error!(error = %err, "cannot serialize a GraphQL response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}"#
                    .to_vec(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn accept_picks_the_media_type_by_quality_then_by_name() {
        use MediaType::{GraphQLResponse as Gr, Json};
        let cases: &[(&[&str], Option<MediaType>)] = &[
            (&[], Some(Json)),
            (&[""], Some(Json)),
            (&["application/graphql-response+json"], Some(Gr)),
            (&["application/json"], Some(Json)),
            (&["*/*"], Some(Json)),
            (&["application/*"], Some(Json)),
            (
                &["application/graphql-response+json, application/json;q=0.9"],
                Some(Gr),
            ),
            (
                &["application/json, application/graphql-response+json"],
                Some(Gr),
            ),
            (
                &["application/graphql-response+json;q=0.5, application/json"],
                Some(Json),
            ),
            (&["application/graphql-response+json;q=0, */*"], Some(Json)),
            (&["application/json;q=0, */*"], Some(Gr)),
            (&["text/html,application/xhtml+xml,*/*;q=0.8"], Some(Json)),
            (
                &["application/graphql-response+json; charset=utf-8"],
                Some(Gr),
            ),
            (&["Application/JSON; Charset=UTF-8"], Some(Json)),
            (&["application/json; charset=iso-8859-1"], None),
            (&["text/html"], None),
            (&["image/png, text/*"], None),
            (&["application/json;q=0"], None),
            (&["application/json;q=2"], None),
            (&["nonsense"], None),
            (&["text/html", "application/json"], Some(Json)),
        ];
        for (values, expected) in cases {
            assert_eq!(
                MediaType::negotiate(&accept(values)),
                *expected,
                "{values:?}"
            );
        }
    }

    #[test]
    fn quality_values_are_read_to_the_thousandth() {
        for (text, q) in [
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("0.9", Some(900)),
            ("0.85", Some(850)),
            ("0.001", Some(1)),
            ("0", Some(0)),
            ("1.5", None),
            ("0.0001", None),
            ("-1", None),
            ("abc", None),
        ] {
            assert_eq!(parse_quality(text), q, "{text}");
        }
    }

    #[test]
    fn only_json_bodies_are_read() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(is_json_body(&with("application/json")));
        assert!(is_json_body(&with("application/json; charset=utf-8")));
        assert!(is_json_body(&with("Application/JSON;charset=\"UTF-8\"")));
        assert!(!is_json_body(&HeaderMap::new()));
        assert!(!is_json_body(&with("text/plain;charset=UTF-8")));
        assert!(!is_json_body(&with("application/x-www-form-urlencoded")));
        assert!(!is_json_body(&with("application/graphql")));
        assert!(!is_json_body(&with("application/json; charset=latin1")));
    }

    #[test]
    fn bodies_that_are_not_graphql_requests_are_told_apart() {
        let ok = request_from_body(
            br#"{"query": "{ a }", "operationName": null, "variables": {"x": 1}, "extensions": null}"#,
        )
        .unwrap();
        assert_eq!(ok.query, "{ a }");
        assert_eq!(ok.operation_name, None);
        let by_hash =
            request_from_body(br#"{"extensions": {"persistedQuery": {"sha256Hash": "ab"}}}"#)
                .unwrap();
        assert_eq!(by_hash.query, "");
        for body in [
            &br#"{ "not a JSON"#[..],
            b"",
            br#"{"qeury": "{ a }"}"#,
            br#"{"query": {"obj": "ect"}}"#,
            br#"{"query": "{ a }", "operationName": 0}"#,
            br#"{"query": "{ a }", "variables": "string"}"#,
            br#"{"query": "{ a }", "variables": ["array"]}"#,
            br#"{"query": "{ a }", "extensions": false}"#,
            br#"[{"query": "{ a }"}]"#,
        ] {
            assert!(
                request_from_body(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn get_parameters_are_read_by_their_spec_names() {
        let uri: Uri =
            "/graphql?query=query%20Q%20%7B%20a%20%7D&operationName=Q&variables=%7B%22x%22%3A1%7D"
                .parse()
                .unwrap();
        let request = request_from_query_string(&uri).unwrap();
        assert_eq!(request.query, "query Q { a }");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.get("x"), Some(&Value::from(1)));
        for bad in [
            "/graphql?operationName=Q",
            "/graphql?query=%7Ba%7D&variables=%22x%22",
            "/graphql?query=%7Ba%7D&variables=%7B",
            "/graphql?query=%7Ba%7D&extensions=%5B%5D",
        ] {
            let uri: Uri = bad.parse().unwrap();
            assert!(request_from_query_string(&uri).is_err(), "{bad}");
        }
    }
}
