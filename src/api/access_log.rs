//! One log line per request (target `jobline::access`, level info): request id, e-shop,
//! method, route pattern, status and duration. The route is the pattern
//! (`/api-results/{file}`), never the path, and no header or query is written, so neither a
//! token nor a result secret nor a signing key can reach the log.

use super::auth::Tenant;
use super::envelope::REQUEST_ID_HEADER;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use std::time::Instant;

/// Middleware, outermost: logs the answer once it is ready.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let res = next.call(req).await?;
    let request = res.request();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let eshop = request
        .extensions()
        .get::<Tenant>()
        .map_or_else(|| "-".to_string(), |t| t.eshop_id.to_string());
    let id = res
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    log::info!(
        target: "jobline::access",
        "request={id} eshop={eshop} {method} {route} status={} duration_ms={:.1}",
        res.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(res)
}
