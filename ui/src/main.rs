//! Kassa Register's UI: a selling screen that keeps its scan field focused, shows the cart with
//! the same totals as Central (`kassa_domain`), takes cash and shows the receipt, and shows the
//! online/offline indicator with the count of sales waiting to sync.

mod app;
mod services;
mod view;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
