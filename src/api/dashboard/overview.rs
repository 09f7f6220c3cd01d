//! `GET /dashboard`: per queue the pending and running jobs, this node's pool and busy
//! workers, the oldest pending job's age and the jobs ended per minute over the last hour;
//! the webhook deliveries due, failing and disabled targets; the nodes alive and the backend.

use super::layout::{self, Section};
use super::session::Operator;
use super::{html, DashResult};
use crate::api::AppState;
use crate::db::nodes::NodeBeat;
use crate::metrics::minutes::{self, WINDOW};
use crate::model::time;
use crate::store::ReadOverview;
use actix_web::http::StatusCode;
use actix_web::web;
use maud::{html as markup, Markup};

/// `GET /dashboard`.
pub(crate) async fn page(state: web::Data<AppState>, operator: Operator) -> DashResult {
    let now = time::now();
    let queues: Vec<String> = state
        .registry
        .queues()
        .iter()
        .map(|q| q.name.to_string())
        .collect();
    let overview = state
        .store
        .read(ReadOverview {
            queues,
            node: state.node.clone(),
            now,
        })
        .await?;
    let zone = state.config.timezone;
    let now_minute = now / (60 * time::SECOND);
    // This node is alive (it answers), and its own counts are read from memory: fresher
    // than its last heartbeat, which may not even have landed yet.
    let mut nodes = overview.nodes.clone();
    nodes.retain(|n| n.node != state.node);
    nodes.push(NodeBeat {
        node: state.node.clone(),
        started_at: state.started_at,
        heartbeat_at: now,
        minutes: state.metrics.minutes.encode(now_minute),
    });
    let alive_since = now - 3 * time::micros(state.config.heartbeat);
    let mut alive: Vec<&NodeBeat> = nodes
        .iter()
        .filter(|n| n.heartbeat_at >= alive_since)
        .collect();
    alive.sort_by_key(|n| std::cmp::Reverse(n.heartbeat_at));
    let per_minute = per_minute(&nodes, now_minute);
    let w = &overview.webhooks;
    let body = markup! {
        div data-live {
            h1 { "Overview" }
            p.meta { "Updated " (zone.format(now)) " · database: " strong { (state.backend) } " · this node: " code { (state.node) } }
            section {
                h2 { "Queues" }
                table.grid {
                    thead { tr { th { "queue" } th { "pending" } th { "running (cluster)" } th { "workers here" } th { "busy here" } th { "oldest pending" } } }
                    tbody {
                        @for q in &overview.queues {
                            @let pool = state.metrics.pool(&q.queue).get();
                            tr {
                                td { (q.queue) }
                                td.num { (q.pending) }
                                td.num { (q.running) }
                                td.num { (pool.size) " (" (pool.min) "–" (pool.max) ")" }
                                td.num { (q.busy_here) }
                                td { @match q.oldest_pending { Some(t) => (layout::age(now - t)), None => "—" } }
                            }
                        }
                    }
                }
                h3 { "Jobs ended per minute, last hour (all nodes)" }
                (chart(&per_minute))
            }
            section {
                h2 { "Webhooks" }
                ul.figures {
                    li { span.n { (w.due) } " notifications due now" }
                    li { span.n { (w.failing) } " targets failing (retrying)" }
                    li { span.n { (w.disabled) } " webhooks disabled" }
                }
                p { a href="/dashboard/webhooks" { "Webhooks by e-shop →" } }
            }
            section {
                h2 { "Nodes alive (" (alive.len()) ")" }
                table.grid {
                    thead { tr { th { "node" } th { "started" } th { "last heartbeat" } } }
                    tbody {
                        @for n in &alive {
                            tr {
                                td { code { (n.node) } @if n.node == state.node { " (this node)" } }
                                td { (zone.format(n.started_at)) }
                                td { (layout::age(now - n.heartbeat_at)) " ago" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Overview", Section::Overview, &operator, body),
    ))
}

/// Completed and failed-or-killed jobs per minute of the last [`WINDOW`] minutes up to
/// `now_minute`, summed over the nodes' heartbeats; oldest first.
fn per_minute(nodes: &[NodeBeat], now_minute: i64) -> Vec<(u64, u64)> {
    let mut counts = vec![(0, 0); WINDOW as usize];
    for n in nodes {
        for (minute, completed, failed) in minutes::decode(&n.minutes) {
            let back = now_minute - minute;
            if (0..WINDOW).contains(&back) {
                let slot = &mut counts[(WINDOW - 1 - back) as usize];
                slot.0 += completed;
                slot.1 += failed;
            }
        }
    }
    counts
}

/// A small bar chart: one bar per minute, completed (green) under failed or killed (red).
fn chart(counts: &[(u64, u64)]) -> Markup {
    let max = counts.iter().map(|(c, f)| c + f).max().unwrap_or(0).max(1) as f64;
    let (w, h) = (10.0, 60.0);
    let total: (u64, u64) = counts
        .iter()
        .fold((0, 0), |acc, (c, f)| (acc.0 + c, acc.1 + f));
    markup! {
        svg.chart viewBox={ "0 0 " (counts.len() as f64 * w) " " (h) } preserveAspectRatio="none" role="img" aria-label="jobs ended per minute" {
            @for (i, (c, f)) in counts.iter().enumerate() {
                @let ch = *c as f64 / max * h;
                @let fh = *f as f64 / max * h;
                g {
                    title { (WINDOW - i as i64) " min ago: " (c) " completed, " (f) " failed or killed" }
                    rect.ok x=(i as f64 * w + 1.0) y=(h - ch) width=(w - 2.0) height=(ch) {}
                    rect.bad x=(i as f64 * w + 1.0) y=(h - ch - fh) width=(w - 2.0) height=(fh) {}
                }
            }
        }
        p.meta {
            "Last hour: " (total.0) " completed, " (total.1) " failed or killed"
            @if total.0 + total.1 > 0 { "; peak " (max as u64) " per minute" }
            "."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_of_every_node_add_up_in_their_slot() {
        let beat = |minutes: &str| NodeBeat {
            node: "n".into(),
            started_at: 0,
            heartbeat_at: 0,
            minutes: minutes.into(),
        };
        let counts = per_minute(&[beat("100:2:1,159:1:0"), beat("159:3:0,40:9:9")], 159);
        assert_eq!(counts.len(), 60);
        assert_eq!(counts[59], (4, 0));
        assert_eq!(counts[0], (2, 1));
        assert_eq!(
            counts.iter().map(|c| c.0).sum::<u64>(),
            6,
            "minute 40 is too old"
        );
    }
}
