//! Pushing a manager's queued product edits: `POST /v1/products` for new ones, `PUT` with
//! `If-Match` for changes; a 412 becomes a conflict with Central's row kept for the manager.

use kassa_domain::api::Product;

use super::Engine;
use crate::edits::{self, Edit};
use crate::error::{Error, Result};

impl Engine {
    /// Pushes the pending edits in order; returns how many settled (done, conflict, rejected).
    pub(super) async fn push_edits(&self) -> Result<usize> {
        let pending = edits::pending(&self.db).await?;
        for edit in &pending {
            match self.push_edit(edit).await {
                Ok(product) => edits::mark_done(&self.db, edit, &product).await?,
                Err(err) => self.edit_failed(edit, err).await?,
            }
        }
        Ok(pending.len())
    }

    async fn push_edit(&self, edit: &Edit) -> Result<Product> {
        self.sessions
            .authed(|t| async move {
                match (edit.product_id, edit.base_version) {
                    (Some(id), Some(version)) => {
                        self.client()
                            .update_product(t.expose(), id, version, &edit.input)
                            .await
                    }
                    _ => self.client().create_product(t.expose(), &edit.input).await,
                }
            })
            .await
    }

    async fn edit_failed(&self, edit: &Edit, err: Error) -> Result<()> {
        if err.is_transient() || matches!(err, Error::NotSignedIn | Error::Unreachable { .. }) {
            return Err(err);
        }
        match &err {
            Error::Api {
                status: 412,
                detail,
            } => {
                let theirs: Product = serde_json::from_value(detail.details["current"].clone())
                    .map_err(|e| Error::Corrupt(format!("412 without the current row: {e}")))?;
                edits::mark_conflict(&self.db, edit, &theirs).await
            }
            // A cashier's session cannot push a manager's edit: it waits for a manager.
            Error::Api {
                status: 401 | 403, ..
            } => Ok(()),
            Error::Api { .. } => edits::mark_rejected(&self.db, edit, &err.to_string()).await,
            _ => Err(err),
        }
    }
}
