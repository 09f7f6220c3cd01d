//! `GET /api/products/snapshot`: validates the filters and accepts a snapshot job.

use super::auth::Tenant;
use super::error::ApiError;
use super::jobs::accept;
use super::params::QueryParams;
use super::AppState;
use crate::db::products::ProductFilter;
use crate::jobs::snapshot::SnapshotJob;
use actix_web::{web, HttpRequest, HttpResponse};

/// Most guids `productGuids` may list.
pub const MAX_GUIDS: usize = 50;

/// Reads the snapshot's filters from the query.
fn filter(q: &QueryParams) -> Result<ProductFilter, ApiError> {
    let (creation_time_from, creation_time_to) =
        q.time_range("creationTimeFrom", "creationTimeTo")?;
    let (change_time_from, change_time_to) = q.time_range("changeTimeFrom", "changeTimeTo")?;
    let product_guids = match q.get("productGuids") {
        None => None,
        Some(raw) => {
            let guids: Vec<String> = raw.split(',').map(|g| g.trim().to_string()).collect();
            if guids.len() > MAX_GUIDS {
                return Err(ApiError::invalid_parameter(
                    "productGuids",
                    format!("At most {MAX_GUIDS} guids."),
                ));
            }
            if let Some(bad) = guids.iter().find(|g| uuid::Uuid::parse_str(g).is_err()) {
                return Err(ApiError::invalid_parameter(
                    "productGuids",
                    format!("`{bad}` is not a product guid."),
                ));
            }
            Some(guids)
        }
    };
    Ok(ProductFilter {
        visibility: q.one_of("visibility", &["visible", "hidden"])?,
        creation_time_from,
        creation_time_to,
        change_time_from,
        change_time_to,
        product_guids,
    })
}

/// `GET /api/products/snapshot` → 202 with the job id.
pub async fn submit(
    state: web::Data<AppState>,
    tenant: Tenant,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(&req)?;
    accept(&state, &req, tenant, &SnapshotJob(filter(&q)?)).await
}
