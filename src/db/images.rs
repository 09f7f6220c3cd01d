//! Product images: the downloaded bytes and what the API shows of them. Every query is
//! scoped by e-shop; the bytes are read only when served.

use super::products::{self, Product};
use super::schema::product_images;
use super::DbConnection;
use crate::error::StoreResult;
use crate::model::Micros;
use diesel::prelude::*;
use std::collections::HashMap;

/// An image as the API lists it (everything but the bytes).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = product_images)]
pub struct ImageMeta {
    /// The product it belongs to.
    pub product_guid: String,
    /// Unique per product; part of its URL.
    pub name: String,
    /// Lower first.
    pub priority: i32,
    /// The client's description, if given.
    pub description: Option<String>,
    /// Decided from the bytes (`image/png`, …).
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// MD5 of the bytes, lower-case hex.
    pub md5: String,
    /// Where it was downloaded from.
    pub source_url: String,
    /// When stored.
    pub created: Micros,
}

/// An image to store, bytes included.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = product_images)]
pub struct NewImage {
    /// The product it belongs to.
    pub product_guid: String,
    /// Owner (the product's e-shop).
    pub eshop_id: i64,
    /// Unique per product.
    pub name: String,
    /// Lower first.
    pub priority: i32,
    /// The client's description.
    pub description: Option<String>,
    /// Decided from the bytes.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// MD5 of the bytes, lower-case hex.
    pub md5: String,
    /// Where it was downloaded from.
    pub source_url: String,
    /// When stored.
    pub created: Micros,
    /// The image itself.
    pub data: Vec<u8>,
}

/// A product with its images: what every product view shows.
#[derive(Debug, Clone)]
pub struct ProductWithImages {
    /// The product.
    pub product: Product,
    /// Its images, by priority then name.
    pub images: Vec<ImageMeta>,
}

/// Attaches an image to a product of the e-shop, replacing an image of the same name.
/// A product that is gone (or another e-shop's) is `NotFound`.
pub fn replace(conn: &mut DbConnection, image: &NewImage) -> StoreResult<()> {
    products::get(conn, image.eshop_id, &image.product_guid)?;
    diesel::delete(
        product_images::table
            .filter(product_images::eshop_id.eq(image.eshop_id))
            .filter(product_images::product_guid.eq(&image.product_guid))
            .filter(product_images::name.eq(&image.name)),
    )
    .execute(conn)?;
    diesel::insert_into(product_images::table)
        .values(image)
        .execute(conn)?;
    Ok(())
}

/// The images of these products of one e-shop, in ONE query, grouped by product in the
/// order of `products` (each group by priority, then name).
pub fn attach(
    conn: &mut DbConnection,
    eshop_id: i64,
    products: Vec<Product>,
) -> StoreResult<Vec<ProductWithImages>> {
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let guids: Vec<&str> = products.iter().map(|p| p.guid.as_str()).collect();
    let rows: Vec<ImageMeta> = product_images::table
        .filter(product_images::eshop_id.eq(eshop_id))
        .filter(product_images::product_guid.eq_any(&guids))
        .order((product_images::priority, product_images::name))
        .select(ImageMeta::as_select())
        .load(conn)?;
    let mut by_guid: HashMap<String, Vec<ImageMeta>> = HashMap::new();
    for row in rows {
        by_guid
            .entry(row.product_guid.clone())
            .or_default()
            .push(row);
    }
    Ok(products
        .into_iter()
        .map(|product| ProductWithImages {
            images: by_guid.remove(&product.guid).unwrap_or_default(),
            product,
        })
        .collect())
}

/// The content type and bytes of one image of one e-shop's product.
pub fn data(
    conn: &mut DbConnection,
    eshop_id: i64,
    product_guid: &str,
    name: &str,
) -> StoreResult<(String, Vec<u8>)> {
    Ok(product_images::table
        .filter(product_images::eshop_id.eq(eshop_id))
        .filter(product_images::product_guid.eq(product_guid))
        .filter(product_images::name.eq(name))
        .select((product_images::content_type, product_images::data))
        .first(conn)?)
}
