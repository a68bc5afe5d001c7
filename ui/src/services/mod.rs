//! Calls into the Tauri shell, one module per family of commands. Every call goes through
//! [`call`]: arguments as a JS object, the answer or the shell's error body decoded with serde.

pub mod catalog;
pub mod conflicts;
pub mod printing;
pub mod refunds;
pub mod reports;
pub mod sale;
pub mod session;
pub mod shift;
pub mod shortfalls;
pub mod stock;
pub mod sync;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::model::ShellError;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = ["window", "__TAURI__", "core"], catch)]
    async fn invoke(cmd: &str, args: JsValue) -> Result<JsValue, JsValue>;
}

/// Runs shell command `cmd` with `args` (a struct whose fields are the command's arguments).
pub async fn call<A: Serialize, T: DeserializeOwned>(cmd: &str, args: &A) -> Result<T, Error> {
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    let args = args
        .serialize(&serializer)
        .map_err(|e| Error::Decode(e.to_string()))?;
    match invoke(cmd, args).await {
        Ok(value) => {
            serde_wasm_bindgen::from_value(value).map_err(|e| Error::Decode(e.to_string()))
        }
        Err(err) => Err(
            match serde_wasm_bindgen::from_value::<ShellError>(err.clone()) {
                Ok(shell) => Error::Shell(shell),
                Err(_) => Error::NoShell(err.as_string().unwrap_or_else(|| format!("{err:?}"))),
            },
        ),
    }
}

/// For commands without arguments.
#[derive(Serialize)]
pub struct NoArgs {}
