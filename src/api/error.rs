//! The API's error: an HTTP status, a stable kebab-case code, a message for the client and
//! the field or id concerned. Internal detail is logged, never sent.

use super::envelope::{envelope, ErrorItem};
use crate::error::StoreError;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
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
