//! The HTTP API: routes, the envelope, authentication, and one file per resource. Handlers
//! translate a REST call into messages to the actors and the replies into the envelope.

mod access_log;
pub mod auth;
mod body_deadline;
mod dashboard;
mod endpoint;
pub mod envelope;
pub mod error;
mod foreign_errors;
mod health;
mod images;
mod jobs;
pub mod metrics;
mod openapi;
pub mod params;
mod products;
pub mod rate_limit;
mod results;
mod shoptet;
mod snapshot;
mod webhooks;

use crate::config::Config;
use crate::jobs::Registry;
use crate::store::events::Events;
use crate::store::Store;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use endpoint::endpoint;
use error::ApiError;
use std::sync::Arc;

/// What every handler may use.
pub struct AppState {
    /// Persistence actors.
    pub store: Store,
    /// Configuration.
    pub config: Arc<Config>,
    /// Signals (wake queues, job ended, stop a killed job).
    pub events: Arc<Events>,
    /// Job kinds by endpoint.
    pub registry: Registry,
    /// This node's counters and histograms (HTTP requests), rendered by `GET /metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Resolved API tokens.
    pub tokens: auth::TokenCache,
    /// Leaky buckets per token.
    pub limiter: rate_limit::RateLimiter,
    /// This node's id (the dashboard shows its busy workers).
    pub node: String,
    /// `SQLite` or `PostgreSQL`, as the dashboard names it.
    pub backend: &'static str,
    /// When this node started: the dashboard lists this node even before its first
    /// heartbeat has landed.
    pub started_at: crate::model::Micros,
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "No such endpoint.",
    ))
}

/// Declares every route once: [`ROUTES`] lists them (the OpenAPI document is checked
/// against that list) and `register` adds them to a scope as [`endpoint::Endpoint`]s, in
/// order (fixed paths before the patterns that would capture them).
macro_rules! routes {
    ($($path:literal => [$($method:ident => $handler:path),+ $(,)?]),+ $(,)?) => {
        /// Every route: its path pattern (as the OpenAPI document writes it) and the
        /// `Endpoint` methods serving it: `get` (answers `HEAD` too), `get_without_head` (a
        /// `GET` that submits a job), `post`, `patch`, `delete`.
        pub const ROUTES: &[(&str, &[&str])] = &[$(($path, &[$(stringify!($method)),+])),+];

        fn register(scope: actix_web::Scope) -> actix_web::Scope {
            scope$(.service(endpoint($path)$(.$method($handler))+))+
        }
    };
}

routes! {
    "/metrics" => [get => metrics::scrape],
    "/healthz" => [get => health::healthz],
    "/readyz" => [get => health::readyz],
    "/api-results/{file}" => [get => results::download],
    "/api/openapi.json" => [get => openapi::document],
    // A snapshot is submitted by GET; HEAD must not submit one.
    "/api/products/snapshot" => [get_without_head => snapshot::submit],
    "/api/products" => [get => products::list, post => products::create],
    "/api/products/{guid}" => [
        get => products::get,
        patch => products::update,
        delete => products::delete,
    ],
    "/api/products/{guid}/images" => [post => images::submit],
    "/api/products/{guid}/images/{name}" => [get => images::serve],
    "/api/system/jobs" => [get => jobs::list],
    "/api/system/jobs/" => [get => jobs::list],
    "/api/system/jobs/{job_id}" => [get => jobs::get, delete => jobs::kill],
    "/api/webhooks/notifications" => [get => webhooks::notifications],
    "/api/webhooks/notifications/{id}/redeliver" => [post => webhooks::redeliver],
    "/api/webhooks/renew-signature-key" => [post => webhooks::renew_signature_key],
    "/api/webhooks/signature-key" => [get => webhooks::signature_key],
    "/api/webhooks" => [get => webhooks::list, post => webhooks::create],
    "/api/webhooks/{id}" => [
        get => webhooks::get,
        patch => webhooks::update,
        delete => webhooks::delete,
    ],
}

/// Registers every route on an actix-web `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        register(web::scope(""))
            .wrap(from_fn(body_deadline::enforce))
            .wrap(from_fn(params::reject_nul_in_path))
            .wrap(from_fn(rate_limit::limit))
            .wrap(from_fn(foreign_errors::envelope_foreign_errors))
            .wrap(from_fn(envelope::with_request_id))
            .wrap(from_fn(endpoint::head_without_body))
            // Counts every answer, the rate limiter's 429s included.
            .wrap(from_fn(metrics::record))
            // Outermost: logs every answer with the request id set above.
            .wrap(from_fn(access_log::log_request))
            // The operator dashboard: HTML, not part of the API's OpenAPI document.
            .configure(dashboard::configure)
            .default_service(web::to(not_found)),
    );
}
