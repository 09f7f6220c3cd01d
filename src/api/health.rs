//! Liveness and readiness.

use super::envelope::ok;
use super::AppState;
use crate::actors::store::Ping;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// 200 while the process runs.
pub async fn healthz() -> HttpResponse {
    ok(json!({"status": "ok"}))
}

/// 200 when the database answers, else 503.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.read(Ping).await {
        Ok(()) => ok(json!({"status": "ready"})),
        Err(e) => {
            log::warn!("not ready: {e}");
            super::envelope::reply(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "database-unavailable"}),
            )
        }
    }
}
