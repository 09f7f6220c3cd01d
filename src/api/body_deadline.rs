//! The deadline of a request body. actix-web bounds the wait for a request's head (5 s,
//! then 408) but not for its body: a client that declares `Content-Length: 100000` and
//! sends a byte every few seconds would hold its connection for as long as it likes. Every
//! body must arrive within `body_read_timeout` of the request's head; reading it past that
//! fails with [`timed_out`], which [`super::params::json_body`] answers 408
//! `request-timeout`, and the connection is closed after the answer instead of waiting for
//! (or draining) the rest of the body.

use super::AppState;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::HttpMessage;
use futures_util::Stream;
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// Whether a body read failed because its deadline passed.
pub fn timed_out(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == io::ErrorKind::TimedOut)
}

/// Where the unread rest of a late body is kept until the answer has been sent: a payload
/// still alive then makes actix-http close the connection rather than drain the body.
type Held = Rc<RefCell<Option<Payload>>>;

/// The request's payload, failing once the deadline passes.
struct WithDeadline {
    payload: Option<Payload>,
    deadline: Pin<Box<Sleep>>,
    held: Held,
}

impl Stream for WithDeadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(payload) = this.payload.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = Pin::new(payload).poll_next(cx) {
            return Poll::Ready(item);
        }
        if this.deadline.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        *this.held.borrow_mut() = this.payload.take();
        Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body did not arrive within body_read_timeout",
        )))))
    }
}

/// A response body that keeps the unread rest of the request body alive until it has
/// been sent.
struct HoldingPayload {
    body: BoxBody,
    _payload: Payload,
}

impl MessageBody for HoldingPayload {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Middleware: puts the deadline on every request body; after an answer to a body that
/// ran out of time, closes the connection.
pub async fn enforce(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit: Option<Duration> = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.body_read_timeout);
    let payload = req.take_payload();
    let (Some(limit), false) = (limit, matches!(payload, Payload::None)) else {
        req.set_payload(payload);
        return Ok(next.call(req).await?.map_into_right_body());
    };
    let held: Held = Rc::default();
    let stream = WithDeadline {
        payload: Some(payload),
        deadline: Box::pin(tokio::time::sleep(limit)),
        held: held.clone(),
    };
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    req.set_payload(Payload::from(stream));
    let res = next.call(req).await?;
    let Some(rest) = held.borrow_mut().take() else {
        return Ok(res.map_into_right_body());
    };
    let mut res = res.map_into_boxed_body();
    res.response_mut()
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    Ok(res
        .map_body(|_, body| HoldingPayload {
            body,
            _payload: rest,
        })
        .map_into_left_body())
}
