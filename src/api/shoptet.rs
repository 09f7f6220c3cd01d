//! Compatibility with clients of the Shoptet API, decided per request and without
//! configuration: the Shoptet token headers, the vendor media type, and the Shoptet shapes
//! of the answers that differ from jobline's own (job detail in `data.job`, one webhook in
//! `data.webhook`, Shoptet's extra fields on webhooks and notifications).

use actix_web::dev::Payload;
use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest};
use serde_json::{json, Value};
use std::future::{ready, Ready};

/// The media type Shoptet clients send and ask for; accepted wherever JSON is.
pub const VENDOR_MEDIA_TYPE: &str = "application/vnd.shoptet.v1.0";
/// Shoptet's header for a private API token (Shoptet Premium).
pub const PRIVATE_TOKEN_HEADER: &str = "shoptet-private-api-token";
/// Shoptet's header for an add-on's API access token.
pub const ACCESS_TOKEN_HEADER: &str = "shoptet-access-token";

/// The media type of a header value, without parameters, in lower case.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a `Content-Type` value names JSON: `application/json`, any `+json` type, or
/// Shoptet's vendor type, with or without parameters (`; charset=utf-8`).
pub fn is_json_content_type(value: &str) -> bool {
    let mime = media_type(value);
    mime == "application/json" || mime.ends_with("+json") || mime == VENDOR_MEDIA_TYPE
}

/// Which shapes a request's answers take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// jobline's documented shapes (the default).
    Jobline,
    /// Shoptet's shapes: the request authenticated with a Shoptet token header, or named
    /// the vendor media type in `Accept` or `Content-Type`.
    Shoptet,
}

impl Shape {
    /// The shape a request asks for.
    pub fn of(req: &HttpRequest) -> Shape {
        let headers = req.headers();
        let shoptet_token =
            headers.contains_key(PRIVATE_TOKEN_HEADER) || headers.contains_key(ACCESS_TOKEN_HEADER);
        let names_vendor_type = |name| {
            headers
                .get_all(name)
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|v| media_type(v) == VENDOR_MEDIA_TYPE)
        };
        if shoptet_token || names_vendor_type(ACCEPT) || names_vendor_type(CONTENT_TYPE) {
            Shape::Shoptet
        } else {
            Shape::Jobline
        }
    }

    /// A job detail: the object itself, or `{"job": …}`.
    pub fn job(self, detail: Value) -> Value {
        match self {
            Shape::Jobline => detail,
            Shape::Shoptet => json!({ "job": detail }),
        }
    }

    /// One webhook as an item of a list: Shoptet adds `sendPayload` (always `null`: a
    /// `job:finished` body carries no payload).
    pub fn webhook_item(self, mut webhook: Value) -> Value {
        if self == Shape::Shoptet {
            webhook["sendPayload"] = Value::Null;
        }
        webhook
    }

    /// One webhook as the whole answer: the object itself, or `{"webhook": …}`.
    pub fn webhook(self, webhook: Value) -> Value {
        match self {
            Shape::Jobline => webhook,
            Shape::Shoptet => json!({ "webhook": self.webhook_item(webhook) }),
        }
    }

    /// One notification: Shoptet adds `webhookUrl`, `eventCreated`, `attempted` and
    /// `active` (still to be delivered) beside jobline's fields.
    pub fn notification(self, mut n: Value) -> Value {
        if self == Shape::Shoptet {
            n["webhookUrl"] = n["url"].clone();
            n["eventCreated"] = n["data"]["eventCreated"].clone();
            n["attempted"] = n["lastAttempt"]["time"].clone();
            n["active"] = Value::Bool(n["status"] == "pending");
        }
        n
    }
}

impl FromRequest for Shape {
    type Error = actix_web::Error;
    type Future = Ready<Result<Shape, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Shape::of(req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
            "application/vnd.shoptet.v1.0",
            "application/vnd.shoptet.v1.0; charset=UTF-8",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for no in [
            "",
            "text/plain",
            "application/vnd.shoptet.v2.0",
            "multipart/form-data",
        ] {
            assert!(!is_json_content_type(no), "{no}");
        }
    }

    #[test]
    fn shape_follows_token_header_and_media_type() {
        let shape = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::default();
            for h in headers {
                r = r.insert_header(*h);
            }
            Shape::of(&r.to_http_request())
        };
        assert_eq!(shape(&[]), Shape::Jobline);
        assert_eq!(shape(&[("authorization", "Bearer x")]), Shape::Jobline);
        assert_eq!(
            shape(&[("content-type", "application/json")]),
            Shape::Jobline
        );
        assert_eq!(shape(&[("Shoptet-Private-API-Token", "x")]), Shape::Shoptet);
        assert_eq!(shape(&[("Shoptet-Access-Token", "x")]), Shape::Shoptet);
        assert_eq!(
            shape(&[("accept", "text/html, application/vnd.shoptet.v1.0;q=0.9")]),
            Shape::Shoptet
        );
        assert_eq!(
            shape(&[(
                "content-type",
                "application/vnd.shoptet.v1.0; charset=utf-8"
            )]),
            Shape::Shoptet
        );
    }
}
