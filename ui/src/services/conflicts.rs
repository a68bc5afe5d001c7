//! A manager's conflicted catalog edits and their resolution.

use serde::Serialize;
use uuid::Uuid;

use super::{call, NoArgs};
use crate::error::Error;
use crate::model::{Choices, Conflict};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resolution<'a> {
    edit_id: Uuid,
    choices: &'a Choices,
}

pub async fn list() -> Result<Vec<Conflict>, Error> {
    call("conflicts", &NoArgs {}).await
}

pub async fn resolve(edit_id: Uuid, choices: &Choices) -> Result<(), Error> {
    call("resolve_conflict", &Resolution { edit_id, choices }).await
}
