//! A route path with the methods it answers. It knows its methods, so a method it does
//! not answer gets 405 with `Allow` listing them, and every safe `GET` answers `HEAD` too
//! (the same status and headers, no body).

use super::error::ApiError;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{AppService, HttpServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{guard, FromRequest, Handler, Resource, Responder, ResponseError, Route};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A path and its routes.
pub struct Endpoint {
    resource: Resource,
    allow: Vec<Method>,
}

/// The endpoint at `path`, answering no method yet.
pub fn endpoint(path: &str) -> Endpoint {
    Endpoint {
        resource: web::resource(path),
        allow: Vec::new(),
    }
}

impl Endpoint {
    fn route(mut self, methods: &[Method], route: Route) -> Endpoint {
        self.allow.extend_from_slice(methods);
        self.resource = self.resource.route(route);
        self
    }

    /// A safe `GET`: `HEAD` runs the same handler and sends no body.
    pub fn get<F, Args>(self, handler: F) -> Endpoint
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::route()
            .guard(guard::Any(guard::Get()).or(guard::Head()))
            .to(handler);
        self.route(&[Method::GET, Method::HEAD], route)
    }

    /// `method` alone, with `handler`.
    fn only<F, Args>(self, method: Method, handler: F) -> Endpoint
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let route = web::method(method.clone()).to(handler);
        self.route(&[method], route)
    }

    /// A `GET` that changes something (it submits a job): no `HEAD`, which must be safe.
    pub fn get_without_head<F, Args>(self, handler: F) -> Endpoint
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.only(Method::GET, handler)
    }

    /// `POST`.
    pub fn post<F, Args>(self, handler: F) -> Endpoint
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.only(Method::POST, handler)
    }

    /// `PATCH`.
    pub fn patch<F, Args>(self, handler: F) -> Endpoint
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.only(Method::PATCH, handler)
    }

    /// `DELETE`.
    pub fn delete<F, Args>(self, handler: F) -> Endpoint
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.only(Method::DELETE, handler)
    }
}

impl HttpServiceFactory for Endpoint {
    fn register(self, config: &mut AppService) {
        let names: Vec<&str> = self.allow.iter().map(Method::as_str).collect();
        let allow = HeaderValue::from_str(&names.join(", ")).expect("method names are ASCII");
        self.resource
            .default_service(web::to(move || {
                let allow = allow.clone();
                async move {
                    let mut res = ApiError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method-not-allowed",
                        "This endpoint does not answer that method; `Allow` lists those it does.",
                    )
                    .error_response();
                    res.headers_mut().insert(ALLOW, allow);
                    res
                }
            }))
            .register(config)
    }
}

/// The body of an answer to `HEAD`: the size of the `GET` answer's body, and no bytes. The
/// `GET` body is dropped unread, so a `HEAD` of a result reads no chunk from the store.
struct HeadBody(BodySize);

impl MessageBody for HeadBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

/// Middleware: answers `HEAD` without producing the body (actix-http would send none
/// anyway, but would still read it to the end).
pub async fn head_without_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let head = req.method() == Method::HEAD;
    let res = next.call(req).await?;
    Ok(if head {
        res.map_body(|_, body| HeadBody(body.size()))
            .map_into_left_body()
    } else {
        res.map_into_right_body()
    })
}
