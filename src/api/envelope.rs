//! The response envelope `{"data", "errors", "metadata": {"requestId"}}`, the request id
//! that every response carries (body and `X-Request-ID`), and the list paginator.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use serde_json::{json, Value};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being answered (empty outside a request).
pub fn request_id() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

/// Middleware: gives the request an id, answers it within that id's scope (so the envelope
/// of any response, errors included, can name it) and sets `X-Request-ID`.
pub async fn with_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = Alphanumeric.sample_string(&mut rand::rng(), 20);
    let mut res = REQUEST_ID.scope(id.clone(), next.call(req)).await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    Ok(res)
}

/// One error of the envelope.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorItem {
    /// Stable kebab-case code.
    pub error_code: String,
    /// Human message.
    pub message: String,
    /// Field, parameter or id concerned.
    pub instance: Option<String>,
}

/// The envelope body.
pub fn envelope<T: Serialize>(data: Option<T>, errors: Option<Vec<ErrorItem>>) -> Value {
    json!({
        "data": data,
        "errors": errors,
        "metadata": {"requestId": request_id()},
    })
}

/// A success answer: `status` with `data` in the envelope.
pub fn reply<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponse::build(status).json(envelope(Some(data), None))
}

/// 200 with `data`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    reply(StatusCode::OK, data)
}

/// The paginator of every list.
pub fn paginator(total: i64, page: i64, per_page: i64, on_page: usize) -> Value {
    json!({
        "totalCount": total,
        "page": page,
        "pageCount": (total + per_page - 1) / per_page,
        "itemsOnPage": on_page,
        "itemsPerPage": per_page,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_count_rounds_up() {
        let p = super::paginator(41, 1, 20, 20);
        assert_eq!(p["pageCount"], 3);
        assert_eq!(super::paginator(0, 1, 20, 0)["pageCount"], 0);
    }
}
