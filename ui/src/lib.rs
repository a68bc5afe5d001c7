//! Kassa Register's UI: a Yew (CSR) app for wasm32 that talks to the Tauri shell through
//! `invoke`. `app/` holds the pages and the `Route`, `components/` the pieces of the selling
//! screen, `services/` one module per family of shell commands, `error` what a call can fail
//! with. `model` and `view` are pure (no web APIs) so their unit tests run on the host:
//! `cargo test -p kassa-ui --lib`.

pub mod forms;
pub mod model;
pub mod nav;
pub mod view;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg(target_arch = "wasm32")]
mod error;
#[cfg(target_arch = "wasm32")]
mod services;

/// The wasm entry point: mounts the app on the page's body.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<app::App>::new().render();
}
