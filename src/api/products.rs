//! Products (synchronous): create, read, change, delete, list.

use super::auth::Tenant;
use super::envelope::{ok, paginator, reply};
use super::error::ApiError;
use super::params::{json_body, Body, QueryParams};
use super::AppState;
use crate::db::images::ProductWithImages;
use crate::db::products::{Product, ProductChange};
use crate::model::{ids, time};
use crate::store::{CreateProduct, DeleteProduct, GetProduct, ListProducts, UpdateProduct};
use crate::views;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// Longest product code.
const MAX_CODE: usize = 64;
/// Longest product name.
const MAX_NAME: usize = 250;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProduct {
    code: String,
    name: String,
    visibility: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductPatch {
    code: Option<String>,
    name: Option<String>,
    visibility: Option<String>,
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid_data(field, "Must not be empty."));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid_data(
            field,
            format!("At most {max} characters."),
        ));
    }
    Ok(v.to_string())
}

fn visibility(field: &str, value: &str) -> Result<String, ApiError> {
    match value {
        "visible" | "hidden" => Ok(value.to_string()),
        _ => Err(ApiError::invalid_data(
            field,
            "Must be `visible` or `hidden`.",
        )),
    }
}

fn product_not_found(guid: &str) -> ApiError {
    ApiError::not_found("product-not-found", "Product", guid)
}

fn view(state: &AppState, p: &ProductWithImages) -> Value {
    views::product(&p.product, &p.images, &state.config)
}

/// `POST /api/products`.
pub async fn create(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: Body<NewProduct> = json_body(&req, payload).await?;
    let now = time::now();
    let product = Product {
        guid: ids::new_guid(),
        eshop_id: tenant.eshop_id,
        code: text("data.code", &body.data.code, MAX_CODE)?,
        name: text("data.name", &body.data.name, MAX_NAME)?,
        visibility: match &body.data.visibility {
            Some(v) => visibility("data.visibility", v)?,
            None => "visible".into(),
        },
        creation_time: now,
        change_time: now,
    };
    let code = product.code.clone();
    let created = state
        .store
        .write(CreateProduct(product))
        .await
        .map_err(|e| conflict_at(e, &code))?;
    Ok(reply(
        StatusCode::CREATED,
        views::product(&created, &[], &state.config),
    ))
}

fn conflict_at(e: crate::error::StoreError, code: &str) -> ApiError {
    let conflict = matches!(e, crate::error::StoreError::Conflict(_));
    let err = ApiError::from(e);
    if conflict {
        ApiError {
            message: format!("A product with code `{code}` already exists."),
            ..err
        }
        .at("data.code")
    } else {
        err
    }
}

/// `GET /api/products/{guid}`.
pub async fn get(
    state: web::Data<AppState>,
    tenant: Tenant,
    guid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let guid = guid.into_inner();
    let p = state
        .store
        .read(GetProduct {
            eshop_id: tenant.eshop_id,
            guid: guid.clone(),
        })
        .await
        .map_err(|e| ApiError::from_store(e, product_not_found(&guid)))?;
    Ok(ok(view(&state, &p)))
}

/// `PATCH /api/products/{guid}`.
pub async fn update(
    state: web::Data<AppState>,
    tenant: Tenant,
    guid: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let guid = guid.into_inner();
    let body: Body<ProductPatch> = json_body(&req, payload).await?;
    let d = body.data;
    if d.code.is_none() && d.name.is_none() && d.visibility.is_none() {
        return Err(ApiError::invalid_data(
            "data",
            "Give at least one of code, name, visibility.",
        ));
    }
    let change = ProductChange {
        code: d
            .code
            .as_deref()
            .map(|c| text("data.code", c, MAX_CODE))
            .transpose()?,
        name: d
            .name
            .as_deref()
            .map(|n| text("data.name", n, MAX_NAME))
            .transpose()?,
        visibility: d
            .visibility
            .as_deref()
            .map(|v| visibility("data.visibility", v))
            .transpose()?,
        change_time: Some(time::now()),
    };
    let code = change.code.clone().unwrap_or_default();
    let p = state
        .store
        .write(UpdateProduct {
            eshop_id: tenant.eshop_id,
            guid: guid.clone(),
            change,
        })
        .await
        .map_err(|e| match e {
            crate::error::StoreError::NotFound => product_not_found(&guid),
            other => conflict_at(other, &code),
        })?;
    Ok(ok(view(&state, &p)))
}

/// `DELETE /api/products/{guid}`.
pub async fn delete(
    state: web::Data<AppState>,
    tenant: Tenant,
    guid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let guid = guid.into_inner();
    state
        .store
        .write(DeleteProduct {
            eshop_id: tenant.eshop_id,
            guid: guid.clone(),
        })
        .await
        .map_err(|e| ApiError::from_store(e, product_not_found(&guid)))?;
    Ok(ok(Value::Null))
}

/// `GET /api/products`.
pub async fn list(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req)?;
    let (page, per_page) = q.pagination(20, 100)?;
    let (items, total) = state
        .store
        .read(ListProducts {
            eshop_id: tenant.eshop_id,
            offset: (page - 1) * per_page,
            limit: per_page,
        })
        .await?;
    let products: Vec<Value> = items.iter().map(|p| view(&state, p)).collect();
    Ok(ok(json!({
        "products": products,
        "paginator": paginator(total, page, per_page, items.len()),
    })))
}
