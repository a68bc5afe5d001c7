//! The `kassa-register` desktop binary.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    kassa_desktop::run();
}
