//! The HTTP API: routes, the envelope, authentication, and one file per resource. Handlers
//! translate a REST call into messages to the actors and the replies into the envelope.

pub mod auth;
mod body_deadline;
mod dashboard;
mod endpoint;
pub mod envelope;
pub mod error;
mod health;
mod images;
mod jobs;
pub mod metrics;
pub mod params;
mod products;
pub mod rate_limit;
mod results;
mod snapshot;
mod webhooks;

use crate::actors::events::Events;
use crate::actors::store::Store;
use crate::config::Config;
use crate::jobs::Registry;
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
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "No such endpoint.",
    ))
}

/// Registers every route on an actix-web `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(from_fn(body_deadline::enforce))
            .wrap(from_fn(params::reject_nul_in_path))
            .wrap(from_fn(rate_limit::limit))
            .wrap(from_fn(error::envelope_foreign_errors))
            .wrap(from_fn(envelope::with_request_id))
            .wrap(from_fn(endpoint::head_without_body))
            // Outermost: counts every answer, the rate limiter's 429s included.
            .wrap(from_fn(metrics::record))
            .service(endpoint("/metrics").get(metrics::scrape))
            .service(endpoint("/healthz").get(health::healthz))
            .service(endpoint("/readyz").get(health::readyz))
            .service(endpoint("/api-results/{file}").get(results::download))
            // A snapshot is submitted by GET; HEAD must not submit one.
            .service(endpoint("/api/products/snapshot").get_without_head(snapshot::submit))
            .service(
                endpoint("/api/products")
                    .get(products::list)
                    .post(products::create),
            )
            .service(
                endpoint("/api/products/{guid}")
                    .get(products::get)
                    .patch(products::update)
                    .delete(products::delete),
            )
            .service(endpoint("/api/products/{guid}/images").post(images::submit))
            .service(endpoint("/api/products/{guid}/images/{name}").get(images::serve))
            .service(endpoint("/api/system/jobs").get(jobs::list))
            .service(endpoint("/api/system/jobs/").get(jobs::list))
            .service(
                endpoint("/api/system/jobs/{job_id}")
                    .get(jobs::get)
                    .delete(jobs::kill),
            )
            // Fixed paths first: `/api/webhooks/{id}` would capture them otherwise.
            .service(endpoint("/api/webhooks/notifications").get(webhooks::notifications))
            .service(
                endpoint("/api/webhooks/notifications/{id}/redeliver").post(webhooks::redeliver),
            )
            .service(
                endpoint("/api/webhooks/renew-signature-key").post(webhooks::renew_signature_key),
            )
            .service(
                endpoint("/api/webhooks")
                    .get(webhooks::list)
                    .post(webhooks::create),
            )
            .service(
                endpoint("/api/webhooks/{id}")
                    .get(webhooks::get)
                    .patch(webhooks::update)
                    .delete(webhooks::delete),
            )
            .configure(dashboard::configure)
            .default_service(web::to(not_found)),
    );
}
