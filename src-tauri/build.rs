//! Reads the desktop app's config from the repository's top level (`../tauri.conf.json`).

fn main() {
    if let Err(err) =
        tauri_build::try_build(tauri_build::Attributes::new().config_path("../tauri.conf.json"))
    {
        eprintln!("tauri-build failed: {err:#}");
        std::process::exit(1);
    }
}
