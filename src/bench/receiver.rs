//! The benchmark's webhook receiver: an HTTP server on a free local port with one worker
//! thread. Every delivery's Standard Webhooks signature is checked with the project's own
//! verifier; each `job:finished` is recorded with its arrival time, and duplicates and bad
//! signatures are counted.

use crate::outbound::signing;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the receiver has seen.
#[derive(Default)]
pub(crate) struct Received {
    /// Job id → when its first `job:finished` arrived.
    pub(crate) arrivals: HashMap<String, Instant>,
    /// Deliveries of a job already seen.
    pub(crate) duplicates: usize,
    /// Deliveries whose signature (or timestamp, or body) did not check out.
    pub(crate) bad: usize,
}

struct State {
    /// Signing key of each e-shop, by e-shop id (the path of its webhook URL).
    keys: HashMap<i64, String>,
    received: Mutex<Received>,
    /// Distinct jobs seen so far (read without the lock while waiting).
    distinct: AtomicUsize,
}

/// A running receiver.
pub(crate) struct Receiver {
    state: Arc<State>,
    port: u16,
    server: actix_web::dev::ServerHandle,
}

#[derive(Deserialize)]
struct JobFinished<'a> {
    #[serde(rename = "eventInstance")]
    event_instance: &'a str,
}

async fn hook(
    state: web::Data<Arc<State>>,
    eshop: web::Path<i64>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let arrived = Instant::now();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let now = chrono::Utc::now().timestamp();
    let verified = state.keys.get(&eshop).is_some_and(|key| {
        signing::verify(
            key,
            header("webhook-id"),
            header("webhook-timestamp"),
            header("webhook-signature"),
            &body,
            now,
            signing::DEFAULT_TOLERANCE_SECS,
        )
        .is_ok()
    });
    let event = serde_json::from_slice::<JobFinished>(&body).ok();
    let mut received = state.received.lock().expect("receiver lock");
    match (verified, event) {
        (true, Some(event)) => {
            if received.arrivals.contains_key(event.event_instance) {
                received.duplicates += 1;
            } else {
                received
                    .arrivals
                    .insert(event.event_instance.to_string(), arrived);
                state.distinct.fetch_add(1, Ordering::Relaxed);
            }
            HttpResponse::NoContent().finish()
        }
        _ => {
            received.bad += 1;
            HttpResponse::BadRequest().finish()
        }
    }
}

impl Receiver {
    /// Starts the receiver; `keys` are the e-shops' signing keys by e-shop id.
    pub(crate) fn start(keys: HashMap<i64, String>) -> Result<Receiver, String> {
        let state = Arc::new(State {
            keys,
            received: Mutex::default(),
            distinct: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let data = web::Data::new(state.clone());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .route("/hooks/{eshop}", web::post().to(hook))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .map_err(|e| e.to_string())?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(Receiver {
            state,
            port,
            server: handle,
        })
    }

    /// The URL of one e-shop's webhook.
    pub(crate) fn url(&self, eshop_id: i64) -> String {
        format!("http://127.0.0.1:{}/hooks/{eshop_id}", self.port)
    }

    /// How many distinct jobs have been announced so far.
    pub(crate) fn distinct(&self) -> usize {
        self.state.distinct.load(Ordering::Relaxed)
    }

    /// Stops the server and answers what it received.
    pub(crate) async fn finish(self) -> Received {
        self.server.stop(true).await;
        std::mem::take(&mut *self.state.received.lock().expect("receiver lock"))
    }
}
