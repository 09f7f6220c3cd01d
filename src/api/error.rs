//! The API's error: an HTTP status, a stable kebab-case code, a message for the client and
//! the field or id concerned. Internal detail is logged, never sent.

use super::envelope::{envelope, ErrorItem};
use crate::error::StoreError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use std::fmt;

/// The `Retry-After` of a 503, in seconds: the writer and the readers try the database again
/// at least this often while it is unreachable.
const RETRY_AFTER_SECS: u64 = 2;

/// An error answered in the envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable kebab-case code.
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// The field, parameter or id concerned.
    pub instance: Option<String>,
}

impl ApiError {
    /// An error with every part given.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            instance: None,
        }
    }

    /// Names the field, parameter or id concerned.
    pub fn at(mut self, instance: impl Into<String>) -> ApiError {
        self.instance = Some(instance.into());
        self
    }

    /// 400 `invalid-parameter` for a query parameter.
    pub fn invalid_parameter(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid-parameter", message).at(name)
    }

    /// 422 `invalid-request-data` for a body field.
    pub fn invalid_data(instance: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request-data",
            message,
        )
        .at(instance)
    }

    /// 404 with a resource-specific code.
    pub fn not_found(code: &'static str, what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            code,
            format!("{what} `{id}` was not found."),
        )
        .at(id)
    }

    /// 500 without detail; the cause is logged.
    pub fn internal(cause: impl fmt::Display) -> ApiError {
        log::error!("internal error: {cause}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "An internal error occurred.",
        )
    }

    /// An error that actix-web produced itself (an extractor, a middleware), with the
    /// codes of this API: a query extractor's is 400 `invalid-parameter` at `query`, a JSON
    /// extractor's malformed body 422 `invalid-request-data` at `body` and a body that is
    /// not JSON 415 `unsupported-media-type`; anything else keeps
    /// its status, with a code derived from it (`request-too-large` for 413,
    /// `invalid-request-data` for 422, else the status's reason in kebab case:
    /// `bad-request`, `unsupported-media-type`, …). A 5xx is `internal-error`, its cause
    /// only logged.
    pub fn from_foreign(e: &actix_web::Error) -> ApiError {
        let status = e.as_response_error().status_code();
        if status.is_server_error() {
            return ApiError::internal(e);
        }
        if let Some(q) = e.as_error::<QueryPayloadError>() {
            return ApiError::invalid_parameter("query", format!("Invalid query: {q}."));
        }
        match e.as_error::<JsonPayloadError>() {
            Some(JsonPayloadError::ContentType) => {
                return ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "The body must be JSON (Content-Type: application/json).",
                )
            }
            Some(j) if status == StatusCode::BAD_REQUEST => {
                return ApiError::invalid_data("body", format!("Invalid body: {j}."))
            }
            _ => {}
        }
        let code: &'static str = match status.as_u16() {
            413 => "request-too-large",
            422 => "invalid-request-data",
            _ => kebab_reason(status),
        };
        ApiError::new(status, code, e.to_string())
    }

    /// Maps a store error on a resource: not found → `not_found`, the rest by kind.
    pub fn from_store(e: StoreError, not_found: ApiError) -> ApiError {
        match e {
            StoreError::NotFound => not_found,
            StoreError::Conflict(code) => ApiError::new(
                StatusCode::CONFLICT,
                code,
                "The request conflicts with existing data.",
            ),
            StoreError::InvalidState(code) => ApiError::new(
                StatusCode::CONFLICT,
                code,
                "The resource is not in a state that allows this.",
            ),
            StoreError::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service-unavailable",
                "The database is unreachable or the service is shutting down; try again later.",
            ),
            StoreError::Database(cause) => ApiError::internal(cause),
        }
    }
}

/// A 4xx status's reason phrase in kebab case (`Request Timeout` → `request-timeout`).
fn kebab_reason(status: StatusCode) -> &'static str {
    const KNOWN: [(u16, &str); 15] = [
        (400, "bad-request"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "not-found"),
        (405, "method-not-allowed"),
        (406, "not-acceptable"),
        (408, "request-timeout"),
        (409, "conflict"),
        (410, "gone"),
        (411, "length-required"),
        (412, "precondition-failed"),
        (414, "uri-too-long"),
        (415, "unsupported-media-type"),
        (417, "expectation-failed"),
        (431, "request-header-fields-too-large"),
    ];
    KNOWN
        .iter()
        .find(|(n, _)| *n == status.as_u16())
        .map_or("bad-request", |(_, code)| code)
}

/// Whether an error is one of jobline's own, answered as it is: the API's envelope errors and
/// the dashboard's HTML answers (its sign-in redirect among them).
fn is_ours(e: &actix_web::Error) -> bool {
    e.as_error::<ApiError>().is_some() || e.as_error::<super::dashboard::DashError>().is_some()
}

/// Middleware: answers in the envelope every error that actix-web itself turned into a
/// response (an extractor's error, a route's), so that no error of the routes leaves
/// without it. Errors of this API ([`ApiError`]) and of the dashboard are left as they are. A middleware's
/// `Err` (none of ours returns one) becomes an [`ApiError`] too, answered by actix-web.
pub async fn envelope_foreign_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let res = match next.call(req).await {
        Ok(res) => res,
        Err(e) if is_ours(&e) => return Err(e),
        Err(e) => return Err(ApiError::from_foreign(&e).into()),
    };
    let foreign = res
        .response()
        .error()
        .filter(|e| !is_ours(e))
        .map(ApiError::from_foreign);
    Ok(match foreign {
        Some(e) => res.into_response(e.error_response()).map_into_right_body(),
        None => res.map_into_left_body(),
    })
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::from_store(
            e,
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found."),
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let item = ErrorItem {
            error_code: self.code.to_string(),
            message: self.message.clone(),
            instance: self.instance.clone(),
        };
        let mut answer = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            answer.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        answer.json(envelope(None::<()>, Some(vec![item])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::{test, web, App};
    use serde_json::Value;

    #[derive(serde::Deserialize)]
    struct Page {
        #[allow(dead_code)]
        page: u32,
    }

    async fn with_extractors(_: web::Query<Page>, _: web::Json<Page>) -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    async fn own_error() -> Result<HttpResponse, ApiError> {
        Err(ApiError::invalid_parameter("page", "Bad page."))
    }

    #[actix_rt::test]
    async fn errors_of_actix_web_extractors_are_enveloped() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(envelope_foreign_errors))
                .route("/x", web::post().to(with_extractors))
                .route("/own", web::get().to(own_error)),
        )
        .await;
        let call = |req: test::TestRequest| {
            let app = &app;
            async move {
                let res = test::call_service(app, req.to_request()).await;
                let status = res.status().as_u16();
                let body: Value = test::read_body_json(res).await;
                (status, body)
            }
        };
        let (status, body) = call(test::TestRequest::post().uri("/x?page=nope")).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["errors"][0]["errorCode"], "invalid-parameter",
            "{body}"
        );
        assert_eq!(body["errors"][0]["instance"], "query");
        assert!(body["data"].is_null());
        let (status, body) = call(
            test::TestRequest::post()
                .uri("/x?page=1")
                .insert_header(("content-type", "application/json"))
                .set_payload("{"),
        )
        .await;
        assert_eq!(status, 422);
        assert_eq!(
            body["errors"][0]["errorCode"], "invalid-request-data",
            "{body}"
        );
        assert_eq!(body["errors"][0]["instance"], "body");
        let (status, body) = call(
            test::TestRequest::post()
                .uri("/x?page=1")
                .insert_header(("content-type", "text/plain"))
                .set_payload("{}"),
        )
        .await;
        assert_eq!(status, 415);
        assert_eq!(
            body["errors"][0]["errorCode"], "unsupported-media-type",
            "{body}"
        );
        let (status, body) = call(
            test::TestRequest::post()
                .uri("/x?page=1")
                .insert_header(("content-type", "application/json"))
                .set_payload(vec![b' '; 3 << 20]),
        )
        .await;
        assert_eq!(status, 413);
        assert_eq!(
            body["errors"][0]["errorCode"], "request-too-large",
            "{body}"
        );
        let (status, body) = call(test::TestRequest::get().uri("/own")).await;
        assert_eq!(status, 400);
        assert_eq!(
            body["errors"][0]["errorCode"], "invalid-parameter",
            "{body}"
        );
        assert_eq!(body["errors"][0]["instance"], "page");
    }
}
