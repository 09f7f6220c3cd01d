//! `GET /dashboard/webhooks`: every e-shop's webhooks with their recent delivery success
//! rate, last error and whether they are disabled, with re-enable and bulk redelivery.

use super::layout::{self, csrf_field, Section};
use super::session::Operator;
use super::{html, DashResult};
use crate::api::params::QueryParams;
use crate::api::AppState;
use crate::db::dashboard::RECENT;
use crate::model::time;
use crate::store::ReadWebhookHealth;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use maud::html as markup;

/// Webhooks on one page.
const PER_PAGE: i64 = 50;

/// How far back "recent" deliveries go.
const RECENT_WINDOW: i64 = 24 * 3600 * time::SECOND;

/// `GET /dashboard/webhooks`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    operator: Operator,
    req: HttpRequest,
) -> DashResult {
    let q = QueryParams::parse(&req)?;
    let page = q.int("page", 1, 100_000)?.unwrap_or(1);
    let now = time::now();
    let (rows, total) = state
        .store
        .read(ReadWebhookHealth {
            offset: (page - 1) * PER_PAGE,
            limit: PER_PAGE,
            since: now - RECENT_WINDOW,
        })
        .await?;
    let zone = state.config.timezone;
    let body = markup! {
        h1 { "Webhooks" }
        p.meta { (total) " webhooks. Success rate over each one's last " (RECENT) " notifications of the last 24 hours." }
        table.grid.webhooks {
            thead { tr { th { "e-shop" } th { "event" } th { "URL" } th { "state" } th { "recent deliveries" } th { "last error" } th { "actions" } } }
            tbody {
                @for h in &rows {
                    @let w = &h.webhook;
                    @let ended = h.succeeded + h.failed;
                    tr {
                        td.num { a href={ "/dashboard/jobs?q=" (w.eshop_id) } { (w.eshop_id) } }
                        td { (w.event) }
                        td.url { (w.url) }
                        td { @if w.active { (layout::badge("active")) } @else { (layout::badge("disabled")) } }
                        td {
                            @if ended > 0 { (h.succeeded * 100 / ended) " % of " (ended) } @else { "—" }
                            @if h.retrying > 0 { ", " (h.retrying) " retrying" }
                        }
                        td.error { @if let Some((t, e)) = &h.last_error { (zone.format(*t)) ": " (e) } }
                        td {
                            @if !w.active {
                                form.action method="post" action={ "/dashboard/webhooks/" (w.id) "/enable" } {
                                    (csrf_field(&operator))
                                    button type="submit" { "Re-enable" }
                                }
                            }
                            @if h.failed > 0 {
                                form.action method="post" action={ "/dashboard/webhooks/" (w.id) "/redeliver-failed" } {
                                    (csrf_field(&operator))
                                    button type="submit" { "Redeliver failed…" }
                                }
                            }
                        }
                    }
                }
            }
        }
        (layout::pager("", page, page * PER_PAGE < total))
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Webhooks", Section::Webhooks, &operator, body),
    ))
}
