//! Webhooks: registering, reading, changing and removing an e-shop's webhooks, renewing
//! its signature key, and its notifications with their delivery state and redelivery.

use super::auth::Tenant;
use super::envelope::{ok, paginator, reply};
use super::error::ApiError;
use super::params::{json_body, Body, QueryParams};
use super::shoptet::Shape;
use super::AppState;
use crate::db::deliveries::{Notification, NotificationFilter};
use crate::db::notifications::JOB_FINISHED;
use crate::db::webhooks::{Webhook, WebhookChange};
use crate::error::StoreError;
use crate::model::{ids, time, Micros};
use crate::store::{
    CreateWebhooks, DeleteWebhook, GetSignatureKey, GetWebhook, ListNotifications, ListWebhooks,
    RedeliverNotification, RenewSignatureKey, UpdateWebhook, WebhooksCreated,
};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// The events a webhook can subscribe to.
pub const EVENTS: &[&str] = &[JOB_FINISHED];
/// Longest webhook URL.
pub const MAX_URL: usize = 2000;
/// How long a renewed key's predecessor keeps signing.
pub const KEY_GRACE: Micros = 24 * 3600 * time::SECOND;
/// Statuses a notification can have.
const STATUSES: &[&str] = &["pending", "success", "failed"];

/// Shoptet's `sendPayload`: accepted as Shoptet clients send it (`null` or `"full"`), with
/// no effect, as Shoptet does for events without a payload (`job:finished` has none).
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SendPayload {
    Full,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    event: String,
    url: String,
    #[serde(default, rename = "sendPayload")]
    _send_payload: Option<SendPayload>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookPatch {
    url: Option<String>,
    active: Option<bool>,
    #[serde(default, rename = "sendPayload")]
    send_payload: Option<SendPayload>,
}

/// Parses a webhook URL and answers its normalised form (lower-case scheme and host,
/// no default port, at least `/` as the path, percent-encoded where needed). It must be an
/// absolute `http` or `https` URL written `scheme://host…` with a non-empty host, a port
/// from 1 to 65535 if any, no whitespace or control character anywhere (a URL parser
/// would silently drop tabs and line breaks, or read `http:///x` as host `x`), and at most
/// [`MAX_URL`] characters. Whether its address is public is checked at delivery time, on
/// the address actually connected to.
fn webhook_url(field: &str, raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::invalid_data(field, why);
    if raw.chars().count() > MAX_URL {
        return Err(bad(&format!("At most {MAX_URL} characters.")));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("Must not contain spaces or control characters."));
    }
    let absolute = "Must be an absolute http or https URL (`https://host/path`).";
    let authority = ["http://", "https://"]
        .iter()
        .find(|p| raw.len() >= p.len() && raw[..p.len()].eq_ignore_ascii_case(p))
        .map(|p| &raw[p.len()..])
        .ok_or_else(|| bad(absolute))?;
    if authority.is_empty() || authority.starts_with(['/', '\\', '?', '#']) {
        return Err(bad("Must name a host (`https://host/path`)."));
    }
    let port_range = "The port must be from 1 to 65535.";
    let url = url::Url::parse(raw).map_err(|e| match e {
        url::ParseError::InvalidPort => bad(port_range),
        _ => bad(absolute),
    })?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("Must name a host (`https://host/path`)."));
    }
    if url.port() == Some(0) {
        return Err(bad(port_range));
    }
    let normalised = url.to_string();
    if normalised.chars().count() > MAX_URL {
        return Err(bad(&format!("At most {MAX_URL} characters.")));
    }
    Ok(normalised)
}

fn event(field: &str, raw: &str) -> Result<String, ApiError> {
    if EVENTS.contains(&raw) {
        Ok(raw.to_string())
    } else {
        Err(ApiError::invalid_data(
            field,
            format!("Unknown event; known events: {}.", EVENTS.join(", ")),
        ))
    }
}

fn webhook_not_found(id: &str) -> ApiError {
    ApiError::not_found("webhook-not-found", "Webhook", id)
}

fn notification_not_found(id: &str) -> ApiError {
    ApiError::not_found("notification-not-found", "Notification", id)
}

fn view(state: &AppState, w: &Webhook) -> Value {
    let zone = &state.config.timezone;
    json!({
        "id": w.id,
        "event": w.event,
        "url": w.url,
        "active": w.active,
        "created": zone.format(w.created_at),
        "updated": zone.format(w.updated_at),
    })
}

fn notification_view(state: &AppState, n: &Notification) -> Value {
    let zone = &state.config.timezone;
    let last = n.last_attempt_at.map(|t| {
        json!({
            "time": zone.format(t),
            "statusCode": n.last_status_code,
            "durationMs": n.last_duration_ms,
            "error": n.last_error,
        })
    });
    json!({
        "id": n.id,
        "webhookId": n.webhook_id,
        "url": n.url,
        "event": n.event,
        "eventInstance": n.event_instance,
        "status": n.status,
        "attempts": n.attempts,
        "lastAttempt": last,
        "data": serde_json::from_str::<Value>(&n.payload).unwrap_or(Value::String(n.payload.clone())),
    })
}

/// `POST /api/webhooks`: registers one or more webhooks, all or none.
pub async fn create(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
    payload: web::Payload,
    shape: Shape,
) -> Result<HttpResponse, ApiError> {
    let body: Body<Vec<NewWebhook>> = json_body(&req, payload).await?;
    if body.data.is_empty() {
        return Err(ApiError::invalid_data("data", "List at least one webhook."));
    }
    let now = time::now();
    let mut webhooks: Vec<Webhook> = Vec::with_capacity(body.data.len());
    for (i, w) in body.data.iter().enumerate() {
        let event = event(&format!("data[{i}].event"), &w.event)?;
        let url = webhook_url(&format!("data[{i}].url"), &w.url)?;
        if webhooks.iter().any(|earlier| earlier.event == event) {
            return Err(ApiError::invalid_data(
                &format!("data[{i}].event"),
                format!("Only one webhook per event; `{event}` is listed twice."),
            ));
        }
        webhooks.push(Webhook {
            id: ids::prefixed_id("wh"),
            eshop_id: tenant.eshop_id,
            event,
            url,
            active: true,
            created_at: now,
            updated_at: now,
        });
    }
    let taken = |i: usize, event: &str| {
        ApiError::invalid_data(
            &format!("data[{i}].event"),
            format!("A `{event}` webhook is already registered; change it with PATCH."),
        )
    };
    let first_event = webhooks[0].event.clone();
    let created = state
        .store
        .write(CreateWebhooks {
            eshop_id: tenant.eshop_id,
            webhooks,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => taken(0, &first_event),
            other => other.into(),
        })?;
    match created {
        WebhooksCreated::Created(list) => {
            let items: Vec<Value> = list
                .iter()
                .map(|w| shape.webhook_item(view(&state, w)))
                .collect();
            Ok(reply(StatusCode::CREATED, json!({"webhooks": items})))
        }
        WebhooksCreated::EventTaken(i) => Err(taken(i, &body.data[i].event)),
    }
}

/// `GET /api/webhooks`.
pub async fn list(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
    shape: Shape,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req)?;
    let (page, per_page) = q.pagination(100, 500)?;
    let (hooks, total) = state
        .store
        .read(ListWebhooks {
            eshop_id: tenant.eshop_id,
            offset: (page - 1) * per_page,
            limit: per_page,
        })
        .await?;
    let items: Vec<Value> = hooks
        .iter()
        .map(|w| shape.webhook_item(view(&state, w)))
        .collect();
    Ok(ok(json!({
        "webhooks": items,
        "paginator": paginator(total, page, per_page, hooks.len()),
    })))
}

/// `GET /api/webhooks/{id}`: the webhook is `data`, or `data.webhook` in the Shoptet shape.
pub async fn get(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    shape: Shape,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let w = state
        .store
        .read(GetWebhook {
            eshop_id: tenant.eshop_id,
            id: id.clone(),
        })
        .await
        .map_err(|e| ApiError::from_store(e, webhook_not_found(&id)))?;
    Ok(ok(shape.webhook(view(&state, &w))))
}

/// `PATCH /api/webhooks/{id}`: changes the URL and/or whether it is active; answers the
/// webhook as `GET` does.
pub async fn update(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
    shape: Shape,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body: Body<WebhookPatch> = json_body(&req, payload).await?;
    if body.data.url.is_none() && body.data.active.is_none() && body.data.send_payload.is_none() {
        return Err(ApiError::invalid_data(
            "data",
            "Give `url`, `active` or both.",
        ));
    }
    let change = WebhookChange {
        url: match &body.data.url {
            Some(u) => Some(webhook_url("data.url", u)?),
            None => None,
        },
        active: body.data.active,
        updated_at: Some(time::now()),
    };
    let w = state
        .store
        .write(UpdateWebhook {
            eshop_id: tenant.eshop_id,
            id: id.clone(),
            change,
        })
        .await
        .map_err(|e| ApiError::from_store(e, webhook_not_found(&id)))?;
    Ok(ok(shape.webhook(view(&state, &w))))
}

/// `DELETE /api/webhooks/{id}`.
pub async fn delete(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    state
        .store
        .write(DeleteWebhook {
            eshop_id: tenant.eshop_id,
            id: id.clone(),
        })
        .await
        .map_err(|e| ApiError::from_store(e, webhook_not_found(&id)))?;
    Ok(ok(Value::Null))
}

/// `POST /api/webhooks/renew-signature-key`: a new key signs from now on; the previous
/// one keeps signing for [`KEY_GRACE`].
pub async fn renew_signature_key(
    state: web::Data<AppState>,
    tenant: Tenant,
) -> Result<HttpResponse, ApiError> {
    let key = state
        .store
        .write(RenewSignatureKey {
            eshop_id: tenant.eshop_id,
            grace: KEY_GRACE,
        })
        .await?;
    Ok(ok(json!({"signatureKey": key})))
}

/// `GET /api/webhooks/signature-key`: the key that signs the e-shop's deliveries now, so a
/// subscriber can verify from the first delivery on without renewing.
pub async fn signature_key(
    state: web::Data<AppState>,
    tenant: Tenant,
) -> Result<HttpResponse, ApiError> {
    let key = state
        .store
        .read(GetSignatureKey {
            eshop_id: tenant.eshop_id,
        })
        .await?;
    Ok(ok(json!({"signatureKey": key})))
}

fn notification_cutoff(state: &AppState) -> Micros {
    time::now() - time::micros(state.config.notification_retention)
}

/// `GET /api/webhooks/notifications`: newest first, filters `status`, `event`, `from`.
pub async fn notifications(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
    shape: Shape,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req)?;
    let (page, per_page) = q.pagination(100, 500)?;
    let filter = NotificationFilter {
        status: q.one_of("status", STATUSES)?,
        event: q.one_of("event", EVENTS)?,
        from: q.time("from")?,
    };
    let (items, total) = state
        .store
        .read(ListNotifications {
            eshop_id: tenant.eshop_id,
            filter,
            offset: (page - 1) * per_page,
            limit: per_page,
            cutoff: notification_cutoff(&state),
        })
        .await?;
    let views: Vec<Value> = items
        .iter()
        .map(|n| shape.notification(notification_view(&state, n)))
        .collect();
    Ok(ok(json!({
        "notifications": views,
        "paginator": paginator(total, page, per_page, items.len()),
    })))
}

/// `POST /api/webhooks/notifications/{id}/redeliver`: 202, one more delivery is queued.
pub async fn redeliver(
    state: web::Data<AppState>,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    state
        .store
        .write(RedeliverNotification {
            eshop_id: tenant.eshop_id,
            id: id.clone(),
            cutoff: notification_cutoff(&state),
        })
        .await
        .map_err(|e| ApiError::from_store(e, notification_not_found(&id)))?;
    Ok(reply(
        StatusCode::ACCEPTED,
        json!({"id": id, "status": "pending"}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> Result<String, String> {
        webhook_url("data[0].url", raw).map_err(|e| e.message)
    }

    #[test]
    fn webhook_urls_are_normalised() {
        assert_eq!(url("https://example.com").unwrap(), "https://example.com/");
        assert_eq!(
            url("HTTPS://Example.COM:443/a/../b?x=1#f").unwrap(),
            "https://example.com/b?x=1#f"
        );
        assert_eq!(
            url("http://example.com:8080/h%20ook").unwrap(),
            "http://example.com:8080/h%20ook"
        );
        assert_eq!(
            url("http://user:pw@[::1]:65535/").unwrap(),
            "http://user:pw@[::1]:65535/"
        );
        assert_eq!(
            url("http://bücher.example/").unwrap(),
            "http://xn--bcher-kva.example/"
        );
    }

    #[test]
    fn malformed_webhook_urls_are_refused() {
        for raw in [
            "https://example.com/a\r\nX-Injected: 1",
            "https://example.com/\n",
            "https://exa\tmple.com/",
            "https://example.com/a b",
            " https://example.com/",
            "https://example.com/ ",
            "https://example.com/\u{0}",
            "https://example.com/\u{7f}",
            "http:///nohost",
            "http:////nohost",
            "http:\\\\evil.example/",
            "http:/nohost",
            "http:nohost",
            "https://",
            "https://?x",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://example.com:99999999/",
            "ftp://example.com/",
            "//example.com/",
            "/relative",
            "example.com",
            "",
            "http://exa mple.com/",
        ] {
            assert!(url(raw).is_err(), "{raw:?} must be refused");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert!(url(&long).unwrap_err().contains("2000"));
        let at_limit = format!("https://example.com/{}", "a".repeat(MAX_URL - 20));
        assert_eq!(url(&at_limit).unwrap().len(), MAX_URL);
    }
}
