//! The middleware that answers in the envelope every error actix-web itself turned into a
//! response, leaving alone the API's own errors and the dashboard's HTML answers. It stands
//! above both, so that neither error type needs to know the other.

use super::dashboard::DashError;
use super::error::ApiError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;

/// Whether an error is one of jobline's own, answered as it is: the API's envelope errors and
/// the dashboard's HTML answers (its sign-in redirect among them).
fn is_ours(e: &actix_web::Error) -> bool {
    e.as_error::<ApiError>().is_some() || e.as_error::<DashError>().is_some()
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::HttpResponse;
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
