//! The JSON shapes of stored rows that more than one layer writes: a product appears the
//! same in `GET /api/products/{guid}` and in every line of a products snapshot.

use crate::db::products::Product;
use crate::model::Zone;
use serde_json::{json, Value};

/// A product as the API shows it.
pub fn product(p: &Product, zone: &Zone) -> Value {
    json!({
        "guid": p.guid,
        "code": p.code,
        "name": p.name,
        "visibility": p.visibility,
        "creationTime": zone.format(p.creation_time),
        "changeTime": zone.format(p.change_time),
        "images": [],
    })
}
