//! Runs one GraphQL operation: resolves persisted documents, opens the tenant transaction (which
//! authenticates the caller inside PostgreSQL), executes, maps errors once, and commits only a fully
//! successful mutation.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
};
use async_graphql::{Request, Response, ServerError};
use axum::http::StatusCode;
use deadpool_postgres::Pool;

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
    /// HTTP status: 200 unless the request failed as a whole (authentication, authorization).
    pub status: StatusCode,
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
            statements: 0,
            retry_after: match err {
                AppError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
                _ => None,
            },
            cacheable: false,
        }
    }
}

fn log_if_internal(err: &AppError) {
    if let AppError::Internal(cause) = err {
        tracing::error!(error = format!("{cause:#}"), "internal error");
    }
}

/// The operation of `doc` a request names (`None` for an unknown name, or no name where the
/// document has several).
pub fn selected_operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d Positioned<OperationDefinition>> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Which kind of operation the request runs; `Err` for a document that does not parse.
pub fn operation_type(request: &Request) -> Result<OperationType, ServerError> {
    let doc = async_graphql::parser::parse_query(&request.query)
        .map_err(|e| AppError::bad_input(e.to_string()).to_server_error())?;
    let ty = selected_operation(&doc, request.operation_name.as_deref()).map(|op| op.node.ty);
    // Unknown names and missing names are reported by the executor with its own wording.
    Ok(ty.unwrap_or(OperationType::Query))
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
            .then(|| AppError::forbidden("analyst keys may only run registered persisted queries"))
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

    pub async fn execute(
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
                    statements: 0,
                    retry_after: None,
                    cacheable: false,
                };
            }
        };
        let access = match ty {
            OperationType::Query => Access::ReadOnly,
            OperationType::Mutation if get => {
                return Outcome::failed(&AppError::bad_input("mutations must be sent with POST"));
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
        finalize_errors(&mut response.errors);

        // A mutation commits only when every field succeeded. A read-only transaction can have written
        // nothing but the caller's own user row (created on first sight), which is kept either way.
        let finished = if access == Access::ReadOnly || response.is_ok() {
            tx.commit().await
        } else {
            tx.rollback().await
        };
        if let Err(err) = finished {
            // A mutation whose COMMIT failed did not happen; say so instead of returning its data.
            log_if_internal(&err);
            response = Response::from_errors(vec![err.to_server_error()]);
        }
        let statements = tx.statement_count();
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
