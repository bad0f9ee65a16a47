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
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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

impl From<tokio_postgres::Error> for AppError {
    fn from(err: tokio_postgres::Error) -> Self {
        anyhow::Error::new(err).context("database error").into()
    }
}

impl From<deadpool_postgres::PoolError> for AppError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        anyhow::Error::new(err)
            .context("could not get a database connection")
            .into()
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
}
