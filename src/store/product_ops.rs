//! Messages about products.

use super::{ReadOp, WriteOp};
use crate::db::images::{self, ProductWithImages};
use crate::db::products::{self, Product, ProductChange, ProductFilter};
use crate::db::DbConnection;
use crate::error::StoreResult;
use crate::model::Micros;

/// Creates a product.
pub struct CreateProduct(pub Product);

impl WriteOp for CreateProduct {
    type Output = Product;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<Product> {
        products::insert(conn, &self.0)?;
        Ok(self.0.clone())
    }
}

/// Reads one product of an e-shop, with its images.
pub struct GetProduct {
    /// Owner.
    pub eshop_id: i64,
    /// Product guid.
    pub guid: String,
}

impl ReadOp for GetProduct {
    type Output = ProductWithImages;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<ProductWithImages> {
        let p = products::get(conn, self.eshop_id, &self.guid)?;
        one(images::attach(conn, vec![p])?)
    }
}

/// Changes a product; answers it as it now is, with its images.
pub struct UpdateProduct {
    /// Owner.
    pub eshop_id: i64,
    /// Product guid.
    pub guid: String,
    /// What changes.
    pub change: ProductChange,
}

impl WriteOp for UpdateProduct {
    type Output = ProductWithImages;
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<ProductWithImages> {
        let p = products::update(conn, self.eshop_id, &self.guid, &self.change)?;
        one(images::attach(conn, vec![p])?)
    }
}

/// Deletes a product.
pub struct DeleteProduct {
    /// Owner.
    pub eshop_id: i64,
    /// Product guid.
    pub guid: String,
}

impl WriteOp for DeleteProduct {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        products::delete(conn, self.eshop_id, &self.guid)
    }
}

/// One page of the products list (with their images) and the total count.
pub struct ListProducts {
    /// Owner.
    pub eshop_id: i64,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

impl ReadOp for ListProducts {
    type Output = (Vec<ProductWithImages>, i64);
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        let (items, total) = products::list(conn, self.eshop_id, self.offset, self.limit)?;
        Ok((images::attach(conn, items)?, total))
    }
}

/// The next page of a snapshot's products after a keyset position, with their images
/// (one query for the images of the whole page).
pub struct ProductsPage {
    /// Owner.
    pub eshop_id: i64,
    /// The snapshot's filters.
    pub filter: ProductFilter,
    /// The last (creation time, guid) already read.
    pub after: Option<(Micros, String)>,
    /// Page size.
    pub limit: i64,
}

impl ReadOp for ProductsPage {
    type Output = Vec<ProductWithImages>;
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Vec<ProductWithImages>> {
        let page = products::page_after(
            conn,
            self.eshop_id,
            &self.filter,
            self.after.clone(),
            self.limit,
        )?;
        images::attach(conn, page)
    }
}

/// The single entry of a one-product [`images::attach`].
fn one(mut found: Vec<ProductWithImages>) -> StoreResult<ProductWithImages> {
    found.pop().ok_or(crate::error::StoreError::NotFound)
}
