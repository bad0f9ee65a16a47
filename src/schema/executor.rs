//! Runs one GraphQL operation: resolves persisted documents, opens the tenant transaction (which
//! authenticates the caller inside PostgreSQL), executes, maps errors once, and commits only a fully
//! successful mutation.

use std::sync::Arc;
use std::time::Instant;

use crate::db::Pool;
use async_graphql::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
};
use async_graphql::{Request, Response, ServerError};
use axum::http::StatusCode;

use super::DeskSchema;
use super::persisted::PersistedQueries;
use crate::ai::Ai;
use crate::authz::{Authz, Object, Role};
use crate::billing::StartingAllowance;
use crate::db::{Access, Credentials, TenantTx, TxOptions};
use crate::error::{AppError, AppResult, codes};
use crate::graphql::Session;
use crate::identity::auth::InvitationBinding;
use crate::identity::service::OrganizationFollowUp;
use crate::ratelimit::OrgRateLimiter;
use crate::support::service::TicketFollowUp;

/// Everything needed to execute operations; shared by the HTTP handlers and tests.
pub struct Engine {
    pub schema: DeskSchema,
    pub pool: Pool,
    pub authz: Arc<Authz>,
    pub persisted: PersistedQueries,
    pub statement_timeout_ms: u64,
    pub rate_limiter: Arc<OrgRateLimiter>,
    /// The AI pipeline: analyses requested by mutations, similar tickets.
    pub ai: Arc<Ai>,
    /// Whether invitations may be accepted only by the invited e-mail (`DESKGRAPH_INVITATIONS_BIND_EMAIL`).
    pub invitations_bind_email: bool,
}

/// The result of one operation, with what it cost.
pub struct Outcome {
    pub response: Response,
    /// HTTP status: 200 unless the request failed as a whole (authentication, authorization; 405 for
    /// a mutation sent with GET).
    pub status: StatusCode,
    /// A GraphQL request error (status 200): the document did not parse or validate, the variables
    /// did not coerce, or the document has no such operation. Nothing ran, so the response has no
    /// data; GraphQL over HTTP answers it with 400 in `application/graphql-response+json` and with
    /// 200 in `application/json` (the HTTP layer picks the media type).
    pub request_error: bool,
    /// SQL statements sent, including BEGIN, the context and COMMIT/ROLLBACK.
    pub statements: usize,
    /// Seconds to wait before retrying, for a rate-limited request (`Retry-After`).
    pub retry_after: Option<u64>,
    /// Whether the caller may keep the response in its private cache: a persisted operation an
    /// analyst key ran over GET, without errors (the HTTP layer adds `Cache-Control` and `ETag`).
    pub cacheable: bool,
}

impl Outcome {
    pub fn failed(err: &AppError) -> Self {
        log_if_internal(err);
        Self {
            response: Response::from_errors(vec![err.to_server_error()]),
            status: err.http_status(),
            request_error: false,
            statements: 0,
            retry_after: err.retry_after_secs(),
            cacheable: false,
        }
    }
}

fn log_if_internal(err: &AppError) {
    match err {
        AppError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "internal error")
        }
        AppError::Unavailable(cause) => {
            tracing::warn!(error = format!("{cause:#}"), "database unavailable")
        }
        AppError::Timeout(cause) => tracing::warn!(error = format!("{cause:#}"), "timed out"),
        _ => {}
    }
}

/// The first error of a response that is the database's state rather than the request's (an outage,
/// a dropped connection, a timeout). It stands for the whole operation: once the connection or the
/// transaction is gone, every other field failed for the same reason (often as "current transaction
/// is aborted"), and a client must see one retryable answer, not a mix.
fn transient_error(errors: &[ServerError]) -> Option<AppError> {
    errors
        .iter()
        .filter_map(|e| e.source::<AppError>())
        .find(|e| e.is_transient())
        .cloned()
}

/// The operation of `doc` a request names, or its only one when it names none (as the executor
/// picks it); `None` for an unknown name, or no name where the document has several.
pub fn selected_operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d Positioned<OperationDefinition>> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Which kind of operation the request runs; `Err` for a document that does not parse or a request
/// without the value of a required variable.
pub fn operation_type(request: &Request) -> Result<OperationType, ServerError> {
    let doc = async_graphql::parser::parse_query(&request.query).map_err(|e| parse_error(&e))?;
    let Some(op) = selected_operation(&doc, request.operation_name.as_deref()) else {
        // Unknown names and missing names are reported by the executor with its own wording.
        return Ok(OperationType::Query);
    };
    required_variables_given(&op.node, &request.variables)?;
    Ok(op.node.ty)
}

/// The part of GraphQL's CoerceVariableValues that async-graphql leaves to execution, where a missing
/// variable would become a field error after other fields ran: a variable of a non-null type without
/// a default needs a value (validation checks the values given).
fn required_variables_given(
    op: &OperationDefinition,
    variables: &async_graphql::Variables,
) -> Result<(), ServerError> {
    for def in &op.variable_definitions {
        let var = &def.node;
        let given = variables
            .get(&var.name.node)
            .is_some_and(|v| *v != async_graphql::Value::Null);
        if !var.var_type.node.nullable && var.default_value.is_none() && !given {
            let mut err = AppError::bad_input(format!(
                "variable ${} of required type {} was not provided",
                var.name.node, var.var_type.node
            ))
            .to_server_error();
            err.locations = vec![def.pos];
            return Err(err);
        }
    }
    Ok(())
}

/// A document that does not parse, as its author should see it: a one-line message and where.
/// (The parser's own text draws the offending line in ASCII art under a `-->` position.)
fn parse_error(err: &async_graphql::parser::Error) -> ServerError {
    let (message, locations) = match err {
        async_graphql::parser::Error::Syntax { message, start, .. } => {
            let expected = message
                .lines()
                .rev()
                .find_map(|line| line.trim_start().strip_prefix("= "))
                .unwrap_or("unexpected input");
            (
                format!("syntax error: {}", expected.replace('_', " ")),
                vec![*start],
            )
        }
        other => (other.to_string(), other.positions().collect()),
    };
    let mut server = AppError::bad_input(message).to_server_error();
    server.locations = locations;
    server
}

/// Whether async-graphql refused the operation of `response` before executing it: it did not validate
/// (the limits and the variables' values included) or the document has no such operation — a GraphQL
/// request error. Such a response has no data and errors of no field; every error of an executed
/// operation carries its field's path (GraphQL, "Errors"), also when a null reached `data` itself.
fn is_request_error(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// Maps every error of a response to a safe message with `extensions.code`.
pub fn finalize_errors(errors: &mut [ServerError]) {
    for err in errors {
        if let Some(app) = err.source::<AppError>().cloned() {
            log_if_internal(&app);
            app.extend(err);
        } else if err.source.is_some() {
            // An error type other than ours reached the response: never show its text.
            tracing::error!(message = %err.message, "unexpected error type in a resolver");
            err.message = "internal error".into();
            err.extensions
                .get_or_insert_with(Default::default)
                .set("code", codes::INTERNAL);
        } else {
            let has_code = err
                .extensions
                .as_ref()
                .is_some_and(|e| e.get("code").is_some());
            if !has_code {
                // Parse, validation and limit errors: the client's document is at fault.
                err.extensions
                    .get_or_insert_with(Default::default)
                    .set("code", codes::BAD_USER_INPUT);
            }
        }
    }
}

/// How [`Engine::admit`] opens a caller's transaction.
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    pub access: Access,
    /// Whether the operation is a registered persisted one (the only kind analyst keys may run).
    pub persisted: bool,
    /// Whether it counts against the organization's rate limit (live re-reads do not: the
    /// subscription did when it started).
    pub metered: bool,
    pub request_id: Option<&'a str>,
    pub client_request_id: Option<&'a str>,
}

impl Engine {
    /// Opens the caller's tenant transaction (which authenticates them inside PostgreSQL) and admits
    /// the operation, or refuses it and rolls back: an unknown or revoked API key, a key of another
    /// organization, a user who is not a member of the organization named, an analyst key off the
    /// persisted operations, a spent rate limit.
    pub async fn admit(
        &self,
        credentials: &Credentials,
        admission: Admission<'_>,
    ) -> AppResult<Arc<TenantTx>> {
        let options = TxOptions {
            access: admission.access,
            statement_timeout_ms: self.statement_timeout_ms,
            request_id: admission.request_id,
            client_request_id: admission.client_request_id,
        };
        let tx = Arc::new(TenantTx::begin(&self.pool, credentials, options).await?);
        let ctx = tx.context();
        let refused = match credentials {
            Credentials::ApiKey { .. } if ctx.api_key_id.is_none() => Some(
                AppError::Unauthenticated("API key is invalid or revoked".into()),
            ),
            Credentials::ApiKey {
                org_id: Some(org), ..
            } if ctx.org_id != Some(*org) => Some(AppError::forbidden(
                "this API key belongs to another organization",
            )),
            Credentials::User {
                org_id: Some(_), ..
            } if ctx.role.is_none() => Some(AppError::forbidden(
                "you are not a member of this organization",
            )),
            _ => None,
        };
        let refused = refused.or_else(|| {
            (ctx.role == Some(Role::Analyst)
                && (!admission.persisted
                    || !self
                        .authz
                        .allows(Role::Analyst, Object::PersistedQuery, "run")))
            .then(|| {
                AppError::forbidden(
                    "analyst keys may only run registered persisted queries: send a registered \
                     document (the same tokens; whitespace, commas and comments do not matter) or \
                     its sha256 in extensions.persistedQuery (`deskgraph manifest` lists them)",
                )
            })
        });
        // Budgets are per organization (per user or key when acting without one), counted once the
        // caller is known so nobody can spend another organization's budget by naming it.
        let refused = refused.or_else(|| {
            let key = ctx.org_id.or(ctx.user_id).or(ctx.api_key_id)?;
            admission
                .metered
                .then(|| self.rate_limiter.check(key).err())
                .flatten()
        });
        match refused {
            Some(err) => {
                let _ = tx.rollback().await;
                Err(err)
            }
            None => Ok(tx),
        }
    }

    /// Adds what resolvers reach through the context: the session and the modules' handles.
    pub fn with_operation_data(
        &self,
        request: Request,
        session: Session,
        credentials: &Credentials,
    ) -> Request {
        request
            .data(session)
            // Who may accept an invitation: the e-mail the caller's token vouches for.
            .data(InvitationBinding::new(
                credentials,
                self.invitations_bind_email,
            ))
            // The modules' service handles; lower modules see only the follow-up traits they declare.
            .data(self.ai.clone())
            .data::<Arc<dyn TicketFollowUp>>(self.ai.clone())
            .data::<&'static dyn OrganizationFollowUp>(&StartingAllowance)
    }

    /// Runs one operation, within [`Engine::deadline`]: past it (a database that stopped answering
    /// without closing the connection), the operation is abandoned — its connection discarded, so
    /// PostgreSQL rolls it back — and the answer is `UNAVAILABLE`.
    pub async fn execute(
        &self,
        credentials: Credentials,
        request: Request,
        get: bool,
        request_id: Option<&str>,
        client_request_id: Option<&str>,
    ) -> Outcome {
        let deadline = self.deadline();
        let run = self.execute_within(credentials, request, get, request_id, client_request_id);
        match tokio::time::timeout(deadline, run).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::failed(&AppError::Unavailable(Arc::new(anyhow::anyhow!(
                "no answer from the database within {} ms",
                deadline.as_millis()
            )))),
        }
    }

    /// How long one operation may take in all: twice the statement timeout (an operation runs several
    /// statements, and the pool may have to connect first), and 5 s more. A database that answers
    /// never gets near it; TCP keepalives would notice a silent one only after tens of seconds.
    pub fn deadline(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.statement_timeout_ms.saturating_mul(2))
            + std::time::Duration::from_secs(5)
    }

    async fn execute_within(
        &self,
        credentials: Credentials,
        mut request: Request,
        get: bool,
        request_id: Option<&str>,
        client_request_id: Option<&str>,
    ) -> Outcome {
        let started = Instant::now();
        let persisted = match self.persisted.resolve(&mut request) {
            Ok(p) => p,
            Err(err) => return Outcome::failed(&err),
        };
        let ty = match operation_type(&request) {
            Ok(ty) => ty,
            Err(err) => {
                return Outcome {
                    response: Response::from_errors(vec![err]),
                    status: StatusCode::OK,
                    request_error: true,
                    statements: 0,
                    retry_after: None,
                    cacheable: false,
                };
            }
        };
        let access = match ty {
            OperationType::Query => Access::ReadOnly,
            OperationType::Mutation if get => {
                // GET is safe: a mutation over it is refused before anything runs (the HTTP layer
                // adds `Allow: POST`).
                return Outcome {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                    ..Outcome::failed(&AppError::bad_input("mutations must be sent with POST"))
                };
            }
            OperationType::Mutation => Access::ReadWrite,
            OperationType::Subscription => {
                return Outcome::failed(&AppError::bad_input(
                    "subscriptions are served over the websocket only",
                ));
            }
        };
        let tx = match self
            .admit(
                &credentials,
                Admission {
                    access,
                    persisted: persisted.is_some(),
                    metered: true,
                    request_id,
                    client_request_id,
                },
            )
            .await
        {
            Ok(tx) => tx,
            Err(err) => return Outcome::failed(&err),
        };
        let ctx = tx.context();

        let request = self.with_operation_data(
            request,
            Session::new(tx.clone(), self.authz.clone()),
            &credentials,
        );
        let mut response = self.schema.execute(request).await;
        let request_error = is_request_error(&response);
        let transient = transient_error(&response.errors);
        if transient.is_none() {
            // A transient failure replaces the response below, logged once there.
            finalize_errors(&mut response.errors);
        }

        // A mutation commits only when every field succeeded. A read-only transaction can have written
        // nothing but the caller's own user row (created on first sight), which is kept either way.
        let finished = if access == Access::ReadOnly || response.is_ok() {
            tx.commit().await
        } else {
            tx.rollback().await
        };
        let failed = match (transient, finished) {
            // A mutation whose COMMIT failed did not happen (unless the connection dropped during the
            // COMMIT itself, which no server can tell); say so instead of returning its data.
            (_, Err(err)) => Some(err),
            (Some(err), Ok(())) => Some(err),
            (None, Ok(())) => None,
        };
        let statements = tx.statement_count();
        if let Some(err) = failed {
            let mut outcome = Outcome::failed(&err);
            outcome.statements = statements;
            return outcome;
        }
        // Analytics tools poll the same persisted reads: let them revalidate instead of re-reading.
        let cacheable = get
            && persisted.is_some()
            && matches!(credentials, Credentials::ApiKey { .. })
            && ctx.role == Some(Role::Analyst)
            && response.is_ok();
        if let (true, Some(persisted)) = (cacheable, persisted) {
            // The same data must give the same bytes (the `ETag`).
            persisted.order_as_selected(&mut response.data);
        }
        tracing::info!(
            operation = operation_kind(ty),
            persisted = persisted.map(|p| p.name.as_str()),
            org_id = ctx.org_id.map(|id| id.to_string()),
            role = ctx.role.map(Role::as_str),
            errors = response.errors.len(),
            sql_statements = statements,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "graphql operation"
        );
        Outcome {
            response,
            status: StatusCode::OK,
            request_error,
            statements,
            retry_after: None,
            cacheable,
        }
    }
}

/// `query`, `mutation` or `subscription`.
pub(crate) fn operation_kind(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, Variables};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_document_that_does_not_parse_gets_a_clean_message_and_its_location() {
        for (query, message, line, column) in [
            ("{ tickets { ", "syntax error: expected selection", 1, 13),
            (
                "{\n  viewer {\n    role\n  }\n",
                "syntax error: expected selection",
                5,
                1,
            ),
            ("{ 8f31 }", "syntax error: expected selection", 1, 3),
            ("", "syntax error: expected executable definition", 1, 1),
        ] {
            let err = operation_type(&Request::new(query)).expect_err(query);
            assert_eq!(err.message, message, "{query:?}");
            let at: Vec<_> = err.locations.iter().map(|p| (p.line, p.column)).collect();
            assert_eq!(at, vec![(line, column)], "{query:?}");
            let code = err.extensions.as_ref().and_then(|e| e.get("code")).cloned();
            assert_eq!(
                code,
                Some(async_graphql::Value::from(codes::BAD_USER_INPUT))
            );
        }
        // Errors of a document's structure name both places.
        let err = operation_type(&Request::new("query A { a } query A { b }")).unwrap_err();
        assert_eq!(err.message, "operation A is defined twice");
        assert_eq!(err.locations.len(), 2);
    }

    struct Query;

    #[Object]
    impl Query {
        async fn ok(&self) -> i32 {
            1
        }
        /// Non-null: its error nulls `data` itself.
        async fn fails(&self) -> async_graphql::Result<i32> {
            Err("no".into())
        }
        async fn echo(&self, id: async_graphql::ID) -> String {
            id.to_string()
        }
    }

    /// The engine's own checks and async-graphql's refusals before execution tell request errors;
    /// field errors, even one that nulls `data`, are not.
    #[tokio::test]
    async fn only_operations_refused_before_execution_are_request_errors() {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .limit_depth(3)
            .finish();
        let cases = [
            ("{ ok }", None, json!({}), false),
            ("{ fails }", None, json!({}), false),
            ("{ ok fails }", None, json!({}), false),
            (
                "query($id: ID!) { echo(id: $id) }",
                None,
                json!({"id": "x"}),
                false,
            ),
            ("{ nope }", None, json!({}), true),
            ("{ echo }", None, json!({}), true),
            ("query($id: ID!) { echo(id: $id) }", None, json!({}), true),
            (
                "query($id: ID!) { echo(id: $id) }",
                None,
                json!({"id": null}),
                true,
            ),
            (
                "query($id: ID!) { echo(id: $id) }",
                None,
                json!({"id": [1]}),
                true,
            ),
            ("query($id: ID!) { ok }", None, json!({"id": null}), true),
            ("query A { ok } query B { ok }", None, json!({}), true),
            ("query A { ok }", Some("B"), json!({}), true),
            (
                "query($id: ID = \"d\") { echo(id: $id) }",
                None,
                json!({}),
                false,
            ),
            (
                "query Named($id: ID!) { echo(id: $id) }",
                None,
                json!({}),
                true,
            ),
            (
                "{ __schema { types { fields { type { name } } } } }",
                None,
                json!({}),
                true,
            ),
        ];
        for (query, name, variables, expected) in cases {
            let mut request = Request::new(query).variables(Variables::from_json(variables));
            request.operation_name = name.map(str::to_owned);
            // As Engine::execute: its own checks, then async-graphql's.
            let refused = match operation_type(&request) {
                Err(_) => true,
                Ok(_) => is_request_error(&schema.execute(request).await),
            };
            assert_eq!(refused, expected, "{query} ({name:?})");
        }
    }
}
