//! The application's one error type, and its single mapping to GraphQL `extensions.code` and HTTP.
//!
//! Display texts are what clients see, so they never carry internal detail: an [`AppError::Internal`]
//! keeps its cause for the logs and shows only "internal error".

use axum::http::StatusCode;

/// Values of `extensions.code` in GraphQL errors (DESIGN §5).
pub mod codes {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const INSUFFICIENT_CREDITS: &str = "INSUFFICIENT_CREDITS";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    /// The database cannot be reached or dropped the connection; nothing was changed. Retryable.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// A statement or lock timeout cancelled the operation; nothing was changed. Retryable.
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const INTERNAL: &str = "INTERNAL";
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist *for the caller*: another organization's id gets exactly this.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadInput {
        message: String,
        /// The input field at fault, when there is one (`extensions.field`).
        field: Option<&'static str>,
    },
    #[error("insufficient credits: {needed} needed, {available} available")]
    InsufficientCredits { needed: i64, available: i64 },
    #[error("persisted query not found")]
    PersistedQueryNotFound,
    #[error("too many requests for this organization; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The database could not be reached, or the connection dropped mid-operation (the cause is kept
    /// for the logs). The operation did not happen — except a write whose COMMIT was cut off, which
    /// PostgreSQL may have applied: a client that retries writes should make them idempotent.
    #[error("the database is unavailable; retry shortly")]
    Unavailable(std::sync::Arc<anyhow::Error>),
    /// A statement or lock timeout cancelled the operation; nothing was changed.
    #[error("the operation took too long and was cancelled; retry later")]
    Timeout(std::sync::Arc<anyhow::Error>),
    /// The cause is kept for the logs (shared, so the error can be cloned into every field that
    /// waited on the same failed batch).
    #[error("internal error")]
    Internal(std::sync::Arc<anyhow::Error>),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadInput {
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput {
            message: message.into(),
            field: Some(field),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => codes::UNAUTHENTICATED,
            Self::Forbidden(_) => codes::FORBIDDEN,
            Self::NotFound(_) => codes::NOT_FOUND,
            Self::BadInput { .. } => codes::BAD_USER_INPUT,
            Self::InsufficientCredits { .. } => codes::INSUFFICIENT_CREDITS,
            Self::PersistedQueryNotFound => codes::PERSISTED_QUERY_NOT_FOUND,
            Self::RateLimited { .. } => codes::RATE_LIMITED,
            Self::Unavailable(_) => codes::UNAVAILABLE,
            Self::Timeout(_) => codes::TIMEOUT,
            Self::Internal(_) => codes::INTERNAL,
        }
    }

    /// Status of an HTTP response that fails as a whole with this error (before GraphQL runs).
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::PersistedQueryNotFound => StatusCode::NOT_FOUND,
            Self::BadInput { .. } => StatusCode::BAD_REQUEST,
            Self::InsufficientCredits { .. } => StatusCode::PAYMENT_REQUIRED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`), for errors worth retrying.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            Self::Unavailable(_) | Self::Timeout(_) => Some(RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// Whether the failure is the database's state (down, cut off, too slow), not the request's:
    /// such an error fails the whole operation, whatever field met it first.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }

    /// The logged cause of a server-side failure.
    pub fn cause(&self) -> Option<&anyhow::Error> {
        match self {
            Self::Internal(cause) | Self::Unavailable(cause) | Self::Timeout(cause) => Some(cause),
            _ => None,
        }
    }

    /// The GraphQL error a client sees: safe message plus `extensions.code` (and `field`).
    pub fn to_server_error(&self) -> async_graphql::ServerError {
        let mut err = async_graphql::ServerError::new(self.to_string(), None);
        self.extend(&mut err);
        err
    }

    /// The input field at fault, for `extensions.field`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::BadInput { field, .. } => *field,
            _ => None,
        }
    }

    /// Writes `extensions.code` (and `extensions.field`) into a GraphQL error.
    pub fn extend(&self, err: &mut async_graphql::ServerError) {
        let ext = err.extensions.get_or_insert_with(Default::default);
        ext.set("code", self.code());
        if let Some(field) = self.field() {
            ext.set("field", field);
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        Self::Internal(std::sync::Arc::new(err))
    }
}

/// `Retry-After` of a database outage or timeout: long enough for a pool to reconnect, short enough
/// that a restart of a managed database (seconds) costs clients little.
pub const RETRY_AFTER_SECS: u64 = 1;

/// What a database error means for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbFailure {
    Unavailable,
    Timeout,
    Other,
}

impl DbFailure {
    /// The error a client gets for a failure of this kind, keeping `cause` for the logs.
    fn error(self, cause: anyhow::Error) -> AppError {
        let cause = std::sync::Arc::new(cause);
        match self {
            Self::Unavailable => AppError::Unavailable(cause),
            Self::Timeout => AppError::Timeout(cause),
            Self::Other => AppError::Internal(cause),
        }
    }
}

/// Sorts a driver error: the server unreachable or gone (connection refused, reset or closed, the
/// server shutting down or out of connection slots) is `Unavailable`; a statement or lock timeout
/// is `Timeout`; everything else (constraint violations, SQL errors, decoding) is a bug or a user
/// error and stays as it is.
fn db_failure(err: &tokio_postgres::Error) -> DbFailure {
    if err.is_closed() {
        return DbFailure::Unavailable;
    }
    if let Some(code) = err.code() {
        let code = code.code();
        return match code {
            // query_canceled (statement_timeout), lock_not_available (lock_timeout, NOWAIT)
            "57014" | "55P03" => DbFailure::Timeout,
            // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections,
            // idle_session_timeout
            "57P01" | "57P02" | "57P03" | "53300" | "57P05" => DbFailure::Unavailable,
            // connection_exception and its subclasses
            _ if code.starts_with("08") => DbFailure::Unavailable,
            _ => DbFailure::Other,
        };
    }
    // tokio-postgres keeps its error kinds private; its Display names the kind, and these are the
    // kinds of a connection that could not be made or was lost (I/O, TLS, connect, connect timeout).
    match err.to_string().as_str() {
        "error communicating with the server"
        | "error connecting to server"
        | "timeout waiting for server"
        | "error performing TLS handshake" => DbFailure::Unavailable,
        _ => DbFailure::Other,
    }
}

impl From<tokio_postgres::Error> for AppError {
    fn from(err: tokio_postgres::Error) -> Self {
        db_failure(&err).error(anyhow::Error::new(err).context("database error"))
    }
}

impl From<deadpool_postgres::PoolError> for AppError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        let failure = match &err {
            PoolError::Backend(db) => db_failure(db),
            // Waiting for a free connection or for a new one timed out; the pool is closed (shutting
            // down); a new connection's set-up failed.
            PoolError::Timeout(_) | PoolError::Closed | PoolError::PostCreateHook(_) => {
                DbFailure::Unavailable
            }
            PoolError::NoRuntimeSpecified => DbFailure::Other,
        };
        failure.error(anyhow::Error::new(err).context("could not get a database connection"))
    }
}

/// Returns the name of the constraint a database error violated, if any, so call sites can turn
/// named constraint violations into user errors.
pub fn violated_constraint(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error().and_then(|db| db.constraint())
}

/// Maps a database error through `map` when it violates a constraint `map` knows; everything else is
/// internal.
pub fn on_constraint(
    err: tokio_postgres::Error,
    map: impl FnOnce(&str) -> Option<AppError>,
) -> AppError {
    match violated_constraint(&err).and_then(map) {
        Some(app) => app,
        None => err.into(),
    }
}

/// Names the step that failed in the logged cause of an internal error (`failed to load …: database
/// error: …`), for repository functions whose statements return [`AppResult`].
///
/// Unlike `anyhow::Context` on an `AppResult` (which would turn *every* error into an internal one and
/// hide the database error behind `AppError::Internal`'s "internal error" text), this touches only
/// [`AppError::Internal`]: user errors mapped from constraint violations pass through unchanged, and the
/// cause stays downcastable to `tokio_postgres::Error`. A cause shared with a clone (never the case for
/// a fresh statement error) is left as it is.
pub trait DbContext<T> {
    fn db_context(self, what: &'static str) -> AppResult<T>;
}

impl<T> DbContext<T> for AppResult<T> {
    fn db_context(self, what: &'static str) -> AppResult<T> {
        let named = |cause: std::sync::Arc<anyhow::Error>| match std::sync::Arc::try_unwrap(cause) {
            Ok(cause) => std::sync::Arc::new(cause.context(what)),
            Err(shared) => shared,
        };
        self.map_err(|err| match err {
            AppError::Internal(cause) => AppError::Internal(named(cause)),
            AppError::Unavailable(cause) => AppError::Unavailable(named(cause)),
            AppError::Timeout(cause) => AppError::Timeout(named(cause)),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(err: &AppError) -> String {
        let server = err.to_server_error();
        let ext = server.extensions.expect("extensions are set");
        match ext.get("code") {
            Some(async_graphql::Value::String(code)) => code.clone(),
            other => panic!("unexpected code {other:?}"),
        }
    }

    #[test]
    fn each_variant_maps_to_its_code_and_status() {
        let cases = [
            (
                AppError::Unauthenticated("x".into()),
                codes::UNAUTHENTICATED,
                401,
            ),
            (AppError::forbidden("x"), codes::FORBIDDEN, 403),
            (AppError::NotFound("ticket"), codes::NOT_FOUND, 404),
            (AppError::bad_input("x"), codes::BAD_USER_INPUT, 400),
            (
                AppError::InsufficientCredits {
                    needed: 2,
                    available: 1,
                },
                codes::INSUFFICIENT_CREDITS,
                402,
            ),
            (
                AppError::PersistedQueryNotFound,
                codes::PERSISTED_QUERY_NOT_FOUND,
                404,
            ),
            (
                AppError::RateLimited {
                    retry_after_secs: 3,
                },
                codes::RATE_LIMITED,
                429,
            ),
            (
                AppError::from(anyhow::anyhow!("boom")),
                codes::INTERNAL,
                500,
            ),
        ];
        for (err, code, status) in cases {
            assert_eq!(code_of(&err), code);
            assert_eq!(err.http_status().as_u16(), status);
        }
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let err = AppError::from(anyhow::anyhow!("relation \"tickets\" does not exist"));
        let server = err.to_server_error();
        assert_eq!(server.message, "internal error");
    }

    #[test]
    fn bad_input_names_its_field() {
        let server = AppError::invalid_field("title", "title is too long").to_server_error();
        let ext = server.extensions.expect("extensions are set");
        assert_eq!(ext.get("field"), Some(&async_graphql::Value::from("title")));
    }

    fn internal(cause: std::io::Error) -> AppError {
        anyhow::Error::new(cause).context("database error").into()
    }

    #[test]
    fn db_context_names_the_step_of_internal_errors_only() {
        let failed: AppResult<()> = Err(internal(std::io::Error::other("connection reset")));
        let Err(AppError::Internal(cause)) = failed.db_context("failed to load ticket") else {
            panic!("still internal");
        };
        assert_eq!(
            format!("{cause:#}"),
            "failed to load ticket: database error: connection reset"
        );
        // Tests and callers downcast the cause to the driver's error; the context keeps that working.
        assert!(cause.downcast_ref::<std::io::Error>().is_some());

        // Errors mapped for users (constraint violations, credits) pass through untouched.
        for user_error in [
            AppError::forbidden("no free seat"),
            AppError::NotFound("ticket"),
            AppError::InsufficientCredits {
                needed: 5,
                available: 0,
            },
        ] {
            let code = user_error.code();
            let text = user_error.to_string();
            let Err(err) = Err::<(), _>(user_error).db_context("failed to insert member") else {
                unreachable!()
            };
            assert_eq!((err.code(), err.to_string()), (code, text));
        }

        // A cause shared with a clone is left as it is.
        let shared = internal(std::io::Error::other("gone"));
        let _clone = shared.clone();
        let Err(AppError::Internal(cause)) = Err::<(), _>(shared).db_context("failed to x") else {
            panic!("still internal");
        };
        assert_eq!(format!("{cause:#}"), "database error: gone");
    }
}
