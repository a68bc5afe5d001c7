//! Kassa's end-to-end tests, across programs: a real Kassa Central process, the register app
//! (`kassa-register`, driven through tauri-driver and WebKitWebDriver) and the payment processor
//! simulator, with the thermal printer emulator. The tests are `desktop.rs` and
//! `print_test.rs` beside this file; they run the binaries `cargo build --bins` made in the
//! target dir (`./x test` builds them first). This library holds nothing.
