//! The HTTP API: routes, the envelope, authentication, and one file per resource. Handlers
//! translate a REST call into messages to the actors and the replies into the envelope.

pub mod auth;
mod dashboard;
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

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "This endpoint does not answer that method.",
    ))
}

/// A resource whose unsupported methods answer 405 in the envelope.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Registers every route on an actix-web `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(from_fn(params::reject_nul_in_path))
            .wrap(from_fn(rate_limit::limit))
            .wrap(from_fn(envelope::with_request_id))
            // Outermost: counts every answer, the rate limiter's 429s included.
            .wrap(from_fn(metrics::record))
            .service(resource("/metrics").route(web::get().to(metrics::scrape)))
            .service(resource("/healthz").route(web::get().to(health::healthz)))
            .service(resource("/readyz").route(web::get().to(health::readyz)))
            .service(resource("/api-results/{file}").route(web::get().to(results::download)))
            .service(resource("/api/products/snapshot").route(web::get().to(snapshot::submit)))
            .service(
                resource("/api/products")
                    .route(web::get().to(products::list))
                    .route(web::post().to(products::create)),
            )
            .service(
                resource("/api/products/{guid}")
                    .route(web::get().to(products::get))
                    .route(web::patch().to(products::update))
                    .route(web::delete().to(products::delete)),
            )
            .service(resource("/api/products/{guid}/images").route(web::post().to(images::submit)))
            .service(
                resource("/api/products/{guid}/images/{name}").route(web::get().to(images::serve)),
            )
            .service(resource("/api/system/jobs").route(web::get().to(jobs::list)))
            .service(resource("/api/system/jobs/").route(web::get().to(jobs::list)))
            .service(
                resource("/api/system/jobs/{job_id}")
                    .route(web::get().to(jobs::get))
                    .route(web::delete().to(jobs::kill)),
            )
            // Fixed paths first: `/api/webhooks/{id}` would capture them otherwise.
            .service(
                resource("/api/webhooks/notifications")
                    .route(web::get().to(webhooks::notifications)),
            )
            .service(
                resource("/api/webhooks/notifications/{id}/redeliver")
                    .route(web::post().to(webhooks::redeliver)),
            )
            .service(
                resource("/api/webhooks/renew-signature-key")
                    .route(web::post().to(webhooks::renew_signature_key)),
            )
            .service(
                resource("/api/webhooks")
                    .route(web::get().to(webhooks::list))
                    .route(web::post().to(webhooks::create)),
            )
            .service(
                resource("/api/webhooks/{id}")
                    .route(web::get().to(webhooks::get))
                    .route(web::patch().to(webhooks::update))
                    .route(web::delete().to(webhooks::delete)),
            )
            .configure(dashboard::configure)
            .default_service(web::to(not_found)),
    );
}
