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

/// The images of these products, in ONE query, in the order of `products` (each
/// product's by priority, then name).
pub fn attach(
    conn: &mut DbConnection,
    products: Vec<Product>,
) -> StoreResult<Vec<ProductWithImages>> {
    Ok(attach_pages(conn, vec![products])?
        .pop()
        .unwrap_or_default())
}

/// [`attach`] for many pages at once (of one e-shop or of several, as the snapshots' page
/// reader reads them), still in ONE query; a product on two pages gets its images on
/// both. Each product's images are looked up in its own e-shop.
pub fn attach_pages(
    conn: &mut DbConnection,
    pages: Vec<Vec<Product>>,
) -> StoreResult<Vec<Vec<ProductWithImages>>> {
    let mut shops: Vec<i64> = pages.iter().flatten().map(|p| p.eshop_id).collect();
    shops.sort_unstable();
    shops.dedup();
    let mut by_product: HashMap<i64, HashMap<String, Vec<ImageMeta>>> = HashMap::new();
    if !shops.is_empty() {
        let guids: Vec<&str> = pages.iter().flatten().map(|p| p.guid.as_str()).collect();
        let rows: Vec<(i64, ImageMeta)> = product_images::table
            .filter(product_images::eshop_id.eq_any(&shops))
            .filter(product_images::product_guid.eq_any(&guids))
            .order((product_images::priority, product_images::name))
            .select((product_images::eshop_id, ImageMeta::as_select()))
            .load(conn)?;
        for (eshop_id, row) in rows {
            by_product
                .entry(eshop_id)
                .or_default()
                .entry(row.product_guid.clone())
                .or_default()
                .push(row);
        }
    }
    Ok(pages
        .into_iter()
        .map(|page| {
            page.into_iter()
                .map(|product| ProductWithImages {
                    images: by_product
                        .get(&product.eshop_id)
                        .and_then(|of_shop| of_shop.get(&product.guid))
                        .cloned()
                        .unwrap_or_default(),
                    product,
                })
                .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::database::test_server;
    use crate::db::{eshops, migrated_for_tests};

    fn product(eshop_id: i64, guid: &str) -> Product {
        Product {
            guid: guid.into(),
            eshop_id,
            code: guid.into(),
            name: guid.into(),
            visibility: "visible".into(),
            creation_time: 1,
            change_time: 1,
        }
    }

    fn image(eshop_id: i64, guid: &str, name: &str, priority: i32) -> NewImage {
        NewImage {
            product_guid: guid.into(),
            eshop_id,
            name: name.into(),
            priority,
            description: None,
            content_type: "image/png".into(),
            size: 1,
            md5: "0".into(),
            source_url: "http://example.test/i.png".into(),
            created: 1,
            data: vec![0],
        }
    }

    fn names(page: &[ProductWithImages]) -> Vec<(String, Vec<String>)> {
        page.iter()
            .map(|p| {
                let images = p.images.iter().map(|i| i.name.clone()).collect();
                (p.product.guid.clone(), images)
            })
            .collect()
    }

    /// Pages of two e-shops in one query: each product gets its own images, by priority,
    /// a product on two pages gets them on both, one without images none, an empty page
    /// stays empty.
    fn pages_get_their_images_in_one_query(server: Option<&str>) {
        let (_db, conn) = &mut migrated_for_tests(server);
        for e in [1, 2] {
            eshops::create(conn, e, &format!("shop {e}")).unwrap();
        }
        for p in [product(1, "a"), product(1, "b"), product(2, "c")] {
            products::insert(conn, &p).unwrap();
        }
        for i in [
            image(1, "a", "second", 2),
            image(1, "a", "first", 1),
            image(2, "c", "only", 0),
        ] {
            replace(conn, &i).unwrap();
        }
        let pages = vec![
            vec![product(1, "a"), product(1, "b")],
            vec![],
            vec![product(2, "c"), product(1, "a")],
        ];
        let got: Vec<_> = attach_pages(conn, pages)
            .unwrap()
            .iter()
            .map(|p| names(p))
            .collect();
        let own = |guid: &str, images: &[&str]| {
            (
                guid.to_string(),
                images.iter().map(|s| s.to_string()).collect(),
            )
        };
        assert_eq!(
            got,
            [
                vec![own("a", &["first", "second"]), own("b", &[])],
                vec![],
                vec![own("c", &["only"]), own("a", &["first", "second"])],
            ]
        );
        assert!(attach(conn, Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn sqlite_pages_get_their_images_in_one_query() {
        pages_get_their_images_in_one_query(None);
    }

    #[test]
    fn postgres_pages_get_their_images_in_one_query() {
        pages_get_their_images_in_one_query(Some(&test_server()));
    }
}
