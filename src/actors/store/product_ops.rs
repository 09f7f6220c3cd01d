//! Messages about products.

use super::{ReadOp, WriteOp};
use crate::db::products::{self, Product, ProductChange, ProductFilter};
use crate::db::DbConnection;
use crate::error::StoreResult;
use crate::model::Micros;

/// Creates a product.
pub struct CreateProduct(pub Product);

impl WriteOp for CreateProduct {
    type Output = Product;
    fn apply(self, conn: &mut DbConnection) -> StoreResult<Product> {
        products::insert(conn, &self.0)?;
        Ok(self.0)
    }
}

/// Reads one product of an e-shop.
pub struct GetProduct {
    /// Owner.
    pub eshop_id: i64,
    /// Product guid.
    pub guid: String,
}

impl ReadOp for GetProduct {
    type Output = Product;
    fn run(self, conn: &mut DbConnection) -> StoreResult<Product> {
        products::get(conn, self.eshop_id, &self.guid)
    }
}

/// Changes a product.
pub struct UpdateProduct {
    /// Owner.
    pub eshop_id: i64,
    /// Product guid.
    pub guid: String,
    /// What changes.
    pub change: ProductChange,
}

impl WriteOp for UpdateProduct {
    type Output = Product;
    fn apply(self, conn: &mut DbConnection) -> StoreResult<Product> {
        products::update(conn, self.eshop_id, &self.guid, &self.change)
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
    fn apply(self, conn: &mut DbConnection) -> StoreResult<()> {
        products::delete(conn, self.eshop_id, &self.guid)
    }
}

/// One page of the products list with the total count.
pub struct ListProducts {
    /// Owner.
    pub eshop_id: i64,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

impl ReadOp for ListProducts {
    type Output = (Vec<Product>, i64);
    fn run(self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        products::list(conn, self.eshop_id, self.offset, self.limit)
    }
}

/// The next page of a snapshot's products after a keyset position.
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
    type Output = Vec<Product>;
    fn run(self, conn: &mut DbConnection) -> StoreResult<Vec<Product>> {
        products::page_after(conn, self.eshop_id, &self.filter, self.after, self.limit)
    }
}
