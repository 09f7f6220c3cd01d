//! Reading requests: query parameters (each error names its parameter, 400) and JSON
//! bodies (415 when not JSON, 413 when too large, 422 naming the field otherwise). A
//! malformed request never reaches a handler's logic and never yields a 500.

use super::error::ApiError;
use super::shoptet::is_json_content_type;
use crate::model::time::parse_api_time;
use crate::model::Micros;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every request body of the API: `{"data": …}` and nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body<T> {
    /// The request's payload.
    pub data: T,
}

/// Largest JSON body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// The query string, decoded.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Decodes the query string of a request.
    pub fn parse(req: &HttpRequest) -> Result<QueryParams, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
            .map_err(|_| ApiError::invalid_parameter("query", "The query string is malformed."))?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::invalid_parameter(
                name,
                "Parameters must not contain the NUL character (%00).",
            ));
        }
        Ok(QueryParams(pairs))
    }

    /// The first value of a parameter; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        match raw.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid_parameter(
                name,
                format!("`{name}` must be a whole number from {min} to {max}."),
            )),
        }
    }

    /// A time parameter (`2019-01-08T15:13:39+0100` or RFC 3339).
    pub fn time(&self, name: &str) -> Result<Option<Micros>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        parse_api_time(raw).map(Some).ok_or_else(|| {
            ApiError::invalid_parameter(
                name,
                format!("`{name}` must be a time like 2019-01-08T15:13:39+0100."),
            )
        })
    }

    /// One of the allowed values.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        if allowed.contains(&raw) {
            Ok(Some(raw.to_string()))
        } else {
            Err(ApiError::invalid_parameter(
                name,
                format!("`{name}` must be one of: {}.", allowed.join(", ")),
            ))
        }
    }

    /// A from/to pair of times; `from` after `to` is an error.
    pub fn time_range(
        &self,
        from: &str,
        to: &str,
    ) -> Result<(Option<Micros>, Option<Micros>), ApiError> {
        let (a, b) = (self.time(from)?, self.time(to)?);
        if let (Some(a), Some(b)) = (a, b) {
            if a > b {
                return Err(ApiError::invalid_parameter(
                    from,
                    format!("`{from}` is after `{to}`."),
                ));
            }
        }
        Ok((a, b))
    }

    /// `page` (from 1) and `itemsPerPage` (1 to `max`, default `default`).
    pub fn pagination(&self, default: i64, max: i64) -> Result<(i64, i64), ApiError> {
        let page = self.int("page", 1, 1_000_000)?.unwrap_or(1);
        let per_page = self.int("itemsPerPage", 1, max)?.unwrap_or(default);
        Ok((page, per_page))
    }
}

/// Reads a JSON body of type `T`: 415 unless the content type is JSON (Shoptet's vendor
/// type included), 413 over [`MAX_BODY`], 408 when it does not arrive within
/// `body_read_timeout`, 422 `invalid-request-data` naming the field for malformed JSON,
/// wrong types, missing or unknown fields.
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<T, ApiError> {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_json_content_type(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "The body must be JSON (Content-Type: application/json or application/vnd.shoptet.v1.0).",
        ));
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request-too-large",
            format!("The body is larger than {MAX_BODY} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            if super::body_deadline::timed_out(&e) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    "The body did not arrive within body_read_timeout.",
                )
            } else {
                ApiError::invalid_data("body", "The body could not be read completely.")
            }
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    parse_json(&body)
}

/// Parses JSON into `T`, naming the failing field (`data.images[1].downloadUrl`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // JSON can carry U+0000 only as the escape `\u0000`; PostgreSQL text cannot store it.
    // Only a body that has the escape pays for the second parse that finds the field.
    if body.windows(5).any(|w| w == b"u0000") {
        if let Some(path) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| nul_at(&v, String::new()))
        {
            let instance = if path.is_empty() { "body".into() } else { path };
            return Err(ApiError::invalid_data(
                &instance,
                "Text must not contain the NUL character (U+0000).",
            ));
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid_data("body", format!("The body is not valid JSON: {inner}."));
        }
        let instance = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid_data(&instance, format!("Invalid value: {inner}."))
    })
}

/// The path (`data.images[1].name`) of the first string or key holding U+0000.
fn nul_at(v: &Value, path: String) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_at(item, here)
            }
        }),
        _ => None,
    }
}

/// Middleware: a path holding an encoded NUL (`%00`) names nothing (and PostgreSQL could
/// not even compare it): 404 in the envelope before any handler runs.
pub async fn reject_nul_in_path(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.path().contains("%00") {
        let err = ApiError::new(StatusCode::NOT_FOUND, "not-found", "No such resource.");
        return Ok(req.error_response(err).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        data: Inner,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        images: Vec<Image>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Image {
        download_url: String,
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            parse_json::<Body>(br#"{"data":{"images":[{"downloadUrl":"a"},{"downloadUrl":5}]}}"#)
                .unwrap_err();
        assert_eq!(e.instance.as_deref(), Some("data.images[1].downloadUrl"));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        let e = parse_json::<Body>(b"{\"data\":").unwrap_err();
        assert_eq!(e.instance.as_deref(), Some("body"));
        let e =
            parse_json::<Body>(br#"{"data":{"images":[{"downloadUrl":"a\u0000"}]}}"#).unwrap_err();
        assert_eq!(e.instance.as_deref(), Some("data.images[0].downloadUrl"));
        let ok = parse_json::<Body>(br#"{"data":{"images":[{"downloadUrl":"\\u0000"}]}}"#);
        assert!(ok.is_ok(), "an escaped backslash before u0000 is no NUL");
        let e = parse_json::<Body>(br#"{"data":{"images":[],"x":1}}"#).unwrap_err();
        assert_eq!(e.instance.as_deref(), Some("data.x"));
    }
}
