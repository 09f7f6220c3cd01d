//! Liveness and readiness.

use super::envelope::ok;
use super::error::ApiError;
use super::AppState;
use crate::store::Ping;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// 200 while the process runs.
pub async fn healthz() -> HttpResponse {
    ok(json!({"status": "ok"}))
}

/// 200 when the database answers, else 503 `database-unavailable` in the envelope.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.store.read(Ping).await {
        Ok(()) => Ok(ok(json!({"status": "ready"}))),
        Err(e) => {
            log::warn!("not ready: {e}");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "The database does not answer.",
            ))
        }
    }
}
