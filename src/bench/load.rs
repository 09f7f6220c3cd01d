//! The load generator: `GET /api/products/snapshot` over keep-alive connections, either as
//! fast as `concurrency` requests in flight allow (closed loop) or at a fixed offered rate
//! (open loop). Requests go round the e-shops, then round the nodes.

use reqwest::header::{HeaderValue, AUTHORIZATION, LOCATION};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Where request number `i` goes.
pub(crate) struct Plan {
    /// The snapshot URL of each node.
    urls: Vec<String>,
    /// `Bearer <token>` of each e-shop.
    auth: Vec<HeaderValue>,
}

impl Plan {
    /// A plan over the nodes' base URLs and the e-shops' tokens.
    pub(crate) fn new(bases: &[String], tokens: &[String]) -> Result<Plan, String> {
        let auth = tokens
            .iter()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(Plan {
            urls: bases
                .iter()
                .map(|b| format!("{b}/api/products/snapshot"))
                .collect(),
            auth,
        })
    }

    fn target(&self, i: usize) -> (&str, &HeaderValue) {
        let eshops = self.auth.len();
        (
            &self.urls[(i / eshops) % self.urls.len()],
            &self.auth[i % eshops],
        )
    }
}

/// One 202.
pub(crate) struct Accepted {
    /// The job's id.
    pub(crate) id: String,
    /// When its request was sent (in the open loop: when it was due).
    pub(crate) sent: Instant,
    /// When its answer came.
    pub(crate) answered: Instant,
}

/// What the submits got.
pub(crate) struct Submitted {
    /// Every 202.
    pub(crate) accepted: Vec<Accepted>,
    /// Requests not answered 202.
    pub(crate) rejected: usize,
    /// When the first request was sent.
    pub(crate) first: Instant,
    /// When the last answer came.
    pub(crate) last: Instant,
}

/// Sends one submit; answers the job id of a 202.
async fn submit(client: &reqwest::Client, url: &str, auth: &HeaderValue) -> Option<String> {
    let res = match client
        .get(url)
        .header(AUTHORIZATION, auth.clone())
        .send()
        .await
    {
        Ok(res) => res,
        Err(e) => {
            eprintln!("submit failed: {e}");
            return None;
        }
    };
    let status = res.status().as_u16();
    let id = res
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .map(str::to_string);
    // Read the body to the end so the connection is kept for the next request.
    let body = res.bytes().await.unwrap_or_default();
    match (status, id) {
        (202, Some(id)) => Some(id),
        _ => {
            eprintln!(
                "submit answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
            None
        }
    }
}

/// `jobs` submits with `concurrency` requests in flight.
pub(crate) async fn closed_loop(
    client: &reqwest::Client,
    plan: &Plan,
    jobs: usize,
    concurrency: usize,
) -> Submitted {
    let next = Cell::new(0usize);
    let first = Instant::now();
    let lanes = (0..concurrency.max(1)).map(|_| async {
        let mut accepted = Vec::with_capacity(jobs / concurrency.max(1) + 1);
        let mut rejected = 0;
        let mut last = first;
        loop {
            let i = next.get();
            if i >= jobs {
                break;
            }
            next.set(i + 1);
            let (url, auth) = plan.target(i);
            let sent = Instant::now();
            let id = submit(client, url, auth).await;
            last = Instant::now();
            match id {
                Some(id) => accepted.push(Accepted {
                    id,
                    sent,
                    answered: last,
                }),
                None => rejected += 1,
            }
        }
        (accepted, rejected, last)
    });
    let mut out = Submitted {
        accepted: Vec::with_capacity(jobs),
        rejected: 0,
        first,
        last: first,
    };
    for (accepted, rejected, last) in futures_util::future::join_all(lanes).await {
        out.accepted.extend(accepted);
        out.rejected += rejected;
        out.last = out.last.max(last);
    }
    out
}

/// The most requests the open loop keeps in flight, each on a connection of its own. A
/// submit due while all are busy waits for one, and its latency counts from the time it
/// was due, the wait included (no coordinated omission). Unbounded, a rate beyond what the
/// servers commit opened a connection for every waiting submit: at `--rate 6000` on SQLite
/// 14 000 connections, the server's RSS at 189 MB, and the server and the bench spending
/// their CPU on connections, 690 submits/s (docs/benchmarks.md, seventeenth session).
pub(crate) const OPEN_LOOP_IN_FLIGHT: usize = 1024;

/// `jobs` submits offered at `rate` per second, whatever the answers' latency, with at
/// most `in_flight` requests under way.
pub(crate) async fn open_loop(
    client: &reqwest::Client,
    plan: Rc<Plan>,
    jobs: usize,
    rate: f64,
    in_flight: usize,
) -> Submitted {
    let first = Instant::now();
    let slots = Rc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut running = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let due = first + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (client, plan, slots) = (client.clone(), plan.clone(), slots.clone());
        running.push(actix_web::rt::spawn(async move {
            let _slot = slots
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let (url, auth) = plan.target(i);
            let id = submit(&client, url, auth).await;
            let answered = Instant::now();
            id.map(|id| Accepted {
                id,
                sent: due,
                answered,
            })
        }));
    }
    let mut out = Submitted {
        accepted: Vec::with_capacity(jobs),
        rejected: 0,
        first,
        last: first,
    };
    for task in running {
        match task.await {
            Ok(Some(done)) => {
                out.last = out.last.max(done.answered);
                out.accepted.push(done);
            }
            _ => out.rejected += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{web, App, HttpResponse, HttpServer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Requests under way now and the most there were at once.
    #[derive(Default)]
    struct Busy {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    /// A server that answers every submit 202 after `hold`, counting what is under way.
    fn slow_server(hold: Duration, busy: Arc<Busy>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HttpServer::new(move || {
            let busy = busy.clone();
            App::new().default_service(web::to(move || {
                let busy = busy.clone();
                async move {
                    let now = busy.now.fetch_add(1, Ordering::SeqCst) + 1;
                    busy.most.fetch_max(now, Ordering::SeqCst);
                    actix_web::rt::time::sleep(hold).await;
                    busy.now.fetch_sub(1, Ordering::SeqCst);
                    HttpResponse::Accepted()
                        .insert_header(("location", "/api/system/jobs/abc"))
                        .finish()
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        format!("http://{addr}")
    }

    #[actix_rt::test]
    async fn the_open_loop_keeps_at_most_its_slots_in_flight_and_counts_the_wait() {
        let busy = Arc::new(Busy::default());
        let hold = Duration::from_millis(100);
        let base = slow_server(hold, busy.clone());
        let plan = Rc::new(Plan::new(&[base], &["t".to_string()]).unwrap());
        let client = reqwest::Client::new();
        // Twelve submits all due at once, three slots: four waves of 100 ms.
        let got = open_loop(&client, plan, 12, 1e9, 3).await;
        assert_eq!((got.accepted.len(), got.rejected), (12, 0));
        assert_eq!(busy.most.load(Ordering::SeqCst), 3);
        let slowest = got
            .accepted
            .iter()
            .map(|a| a.answered.duration_since(a.sent))
            .max()
            .unwrap();
        // The last wave waited for three before it: its latency counts that wait.
        assert!(slowest >= hold * 4, "{slowest:?}");
    }
}
