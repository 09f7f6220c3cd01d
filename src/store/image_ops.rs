//! Messages about product images.

use super::job_ops::holds;
use super::{ReadOp, WriteOp};
use crate::db::images::{self, NewImage};
use crate::db::DbConnection;
use crate::error::StoreResult;

/// Stores a downloaded image on its product (same name replaces), only while the image
/// job's attempt still holds the job.
pub struct StoreImage {
    /// The images job.
    pub job_id: String,
    /// The attempt that downloaded it.
    pub attempt: i32,
    /// The image, bytes included.
    pub image: NewImage,
}

impl WriteOp for StoreImage {
    type Output = ();
    fn apply(&self, conn: &mut DbConnection) -> StoreResult<()> {
        holds(conn, &self.job_id, self.attempt)?;
        images::replace(conn, &self.image)
    }
}

/// The content type and bytes of one image (to serve it).
pub struct GetImageData {
    /// Owner.
    pub eshop_id: i64,
    /// Product guid.
    pub product_guid: String,
    /// Image name.
    pub name: String,
}

impl ReadOp for GetImageData {
    type Output = (String, Vec<u8>);
    fn run(&self, conn: &mut DbConnection) -> StoreResult<Self::Output> {
        images::data(conn, self.eshop_id, &self.product_guid, &self.name)
    }
}
