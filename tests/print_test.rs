//! `kassa-register --print-test` against the printer emulator: the test page prints with
//! "Kassa" on it, is cut, the drawer is pulsed, and the app exits without opening a window
//! (no display is needed). A bad `KASSA_PRINTER` stops it with the forms that work.

use std::process::Command;
use std::time::Duration;

use kassa_printer_emulator::Emulator;

/// `target/debug/kassa-register`, from this test binary's path (`target/debug/deps/print_test-…`):
/// the shell's binary, built by `cargo build -p kassa-desktop` (`./x test` builds it first).
fn kassa_register_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("this test's own path");
    let debug = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/debug above target/debug/deps");
    debug.join("kassa-register")
}

fn kassa_register(printer: &str) -> Command {
    let mut command = Command::new(kassa_register_bin());
    command
        .arg("--print-test")
        .env("KASSA_PRINTER", printer)
        .env("KASSA_PAPER_MM", "58")
        // No window may open: with no display at all, opening one would fail.
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    command
}

#[tokio::test]
async fn print_test_prints_a_cut_test_page_pulses_the_drawer_and_exits_without_a_window() {
    let emulator = Emulator::start().await.unwrap();
    let url = emulator.url();
    let output = tokio::task::spawn_blocking(move || kassa_register(&url).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("32 characters a line"), "{stdout}");
    let printed = emulator.wait_for_cuts(1, Duration::from_secs(10)).await;
    assert!(printed.has_line_with("Kassa"), "{}", printed.text());
    assert_eq!(printed.cuts(), 1);
    assert_eq!(printed.drawer_pulses(), 1);
    assert_eq!(printed.qr_codes(), vec!["KASSA-TEST"]);
    assert!(printed.unknown().is_empty());
}

#[test]
fn print_test_refuses_a_bad_printer_and_a_printer_that_is_off() {
    let output = kassa_register("lpt://1").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tcp://host:9100"), "{stderr}");

    let off = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = off.local_addr().unwrap().port();
    drop(off);
    let output = kassa_register(&format!("tcp://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
