//! `GET /metrics` (Prometheus text, no token, no envelope) and the middleware that counts
//! and times every HTTP request by its route pattern.

use super::AppState;
use crate::metrics::{CONTENT_TYPE, UNMATCHED_ROUTE};
use crate::model::time;
use crate::store::ReadGauges;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use std::time::Instant;

/// The scrape: this node's counters and histograms, and the cluster's job and queue
/// gauges read through the reader pool. When the database does not answer, the answer is
/// still 200 with `jobline_database_up 0`, so the node's own series are not lost.
pub async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let read = ReadGauges {
        endpoints: state.registry.endpoints(),
        queues: state.registry.queues().iter().map(|q| q.name).collect(),
        now: time::now(),
    };
    let gauges = match state.store.read(read).await {
        Ok(g) => Some(g),
        Err(e) => {
            log::warn!("metrics: reading the database gauges failed: {e}");
            None
        }
    };
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(state.metrics.render(gauges.as_ref()))
}

/// The method label: the standard methods by name, anything else `OTHER` (a client
/// cannot grow the number of series by inventing methods).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("OTHER", |m| m.as_str())
}

/// Middleware: counts the request and observes its latency (until the response starts;
/// a streamed body's transfer is not included), labelled by the matched route pattern
/// (`/api/system/jobs/{job_id}`, so ids do not multiply the series) or `unmatched`.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = method_label(req.method());
    let answered = next.call(req).await;
    if let Some(state) = state {
        let (route, status) = match &answered {
            Ok(res) => (res.request().match_pattern(), res.status()),
            Err(e) => (None, e.as_response_error().status_code()),
        };
        let route = route.unwrap_or_else(|| UNMATCHED_ROUTE.to_string());
        state
            .metrics
            .http_request(method, &route, status.as_u16(), started.elapsed());
    }
    answered
}
