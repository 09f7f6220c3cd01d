//! Product images: `POST /api/products/{guid}/images` validates the request and accepts an
//! images job (nothing is downloaded before the 202); `GET /api/products/{guid}/images/{name}`
//! serves a stored image's bytes.

use super::auth::Tenant;
use super::error::ApiError;
use super::jobs::accept;
use super::params::{json_body, Body};
use super::AppState;
use crate::jobs::images::{ImageSource, ImagesJob};
use crate::store::{GetImageData, GetProduct};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::collections::HashSet;

/// Most images one request may import.
pub const MAX_IMAGES: usize = 100;
/// Longest image name, in characters.
pub const MAX_NAME: usize = 255;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2000;
/// Longest `downloadUrl`.
pub const MAX_URL: usize = 2048;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Data {
    images: Option<Vec<ImageIn>>,
}

/// Fields are optional here so that a missing one is reported at its own path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ImageIn {
    priority: Option<i32>,
    name: Option<String>,
    description: Option<String>,
    download_url: Option<String>,
}

fn name(at: &str, value: Option<String>) -> Result<String, ApiError> {
    let Some(v) = value else {
        return Err(ApiError::invalid_data(at, "A name is required."));
    };
    let chars = v.chars().count();
    if v.trim().is_empty() || chars > MAX_NAME {
        return Err(ApiError::invalid_data(
            at,
            format!("A name has 1 to {MAX_NAME} characters, not only spaces."),
        ));
    }
    if v.contains(['/', '\\']) || v.chars().any(char::is_control) || v == "." || v == ".." {
        return Err(ApiError::invalid_data(
            at,
            "A name may not contain `/`, `\\` or control characters, nor be `.` or `..`.",
        ));
    }
    Ok(v)
}

fn description(at: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(ApiError::invalid_data(
            at,
            format!("At most {MAX_DESCRIPTION} characters."),
        )),
        other => Ok(other),
    }
}

fn download_url(at: &str, value: Option<String>) -> Result<String, ApiError> {
    let Some(v) = value else {
        return Err(ApiError::invalid_data(at, "A downloadUrl is required."));
    };
    let ok = v.len() <= MAX_URL
        && url::Url::parse(&v).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
    if ok {
        Ok(v)
    } else {
        Err(ApiError::invalid_data(
            at,
            format!("Must be an absolute http:// or https:// URL of at most {MAX_URL} characters."),
        ))
    }
}

/// Checks every image; the first problem is answered with its field's path.
fn validate(guid: &str, body: Body<Data>) -> Result<ImagesJob, ApiError> {
    let images = body
        .data
        .images
        .ok_or_else(|| ApiError::invalid_data("data.images", "`images` is required."))?;
    if images.is_empty() || images.len() > MAX_IMAGES {
        return Err(ApiError::invalid_data(
            "data.images",
            format!("Give 1 to {MAX_IMAGES} images."),
        ));
    }
    let mut seen = HashSet::new();
    let mut sources = Vec::with_capacity(images.len());
    for (i, image) in images.into_iter().enumerate() {
        let at = |field: &str| format!("data.images[{i}].{field}");
        let name = name(&at("name"), image.name)?;
        if !seen.insert(name.clone()) {
            return Err(ApiError::invalid_data(
                &at("name"),
                format!("The name `{name}` is used twice in this request."),
            ));
        }
        sources.push(ImageSource {
            priority: image.priority.unwrap_or(0),
            description: description(&at("description"), image.description)?,
            download_url: download_url(&at("downloadUrl"), image.download_url)?,
            name,
        });
    }
    Ok(ImagesJob {
        product_guid: guid.to_string(),
        images: sources,
    })
}

fn product_not_found(guid: &str) -> ApiError {
    ApiError::not_found("product-not-found", "Product", guid)
}

/// `POST /api/products/{guid}/images` → 202 with the job id.
pub async fn submit(
    state: web::Data<AppState>,
    tenant: Tenant,
    guid: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let guid = guid.into_inner();
    let body: Body<Data> = json_body(&req, payload).await?;
    let request = validate(&guid, body)?;
    state
        .store
        .read(GetProduct {
            eshop_id: tenant.eshop_id,
            guid: guid.clone(),
        })
        .await
        .map_err(|e| ApiError::from_store(e, product_not_found(&guid)))?;
    accept(&state, &req, tenant, &request).await
}

/// `GET /api/products/{guid}/images/{name}`: the bytes with their content type.
pub async fn serve(
    state: web::Data<AppState>,
    tenant: Tenant,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (guid, name) = path.into_inner();
    let (content_type, bytes) = state
        .store
        .read(GetImageData {
            eshop_id: tenant.eshop_id,
            product_guid: guid.clone(),
            name: name.clone(),
        })
        .await
        .map_err(|e| {
            ApiError::from_store(
                e,
                ApiError::not_found("image-not-found", "Image", &format!("{guid}/{name}")),
            )
        })?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(bytes))
}
