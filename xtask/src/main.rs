//! `cargo xtask` (via `./x`): what people and CI run. One place says how Kassa is built, run,
//! tested and benchmarked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};

use anyhow::{bail, Context};

mod fuzz;
mod pg;

const USAGE: &str = "usage: ./x run | ./x cluster | ./x test [--model-seed N] | ./x fuzz | ./x bench <checkout|checkout-tracing [sqlite|postgres|both] [rounds]|catalog|search|relay|register|sync|leases|flash-sale|scale|all>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(),
        Some("cluster") => cluster(),
        Some("test") => match args.get(1).map(String::as_str) {
            None => test(),
            Some("--model-seed") => model_seed(args.get(2).map(String::as_str)),
            Some(_) => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        },
        Some("fuzz") => fuzz::fuzz(),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The checkout being worked on. `cargo run` names the package's directory at run time; the
/// compile-time path is only a fallback, since one shared target dir serves several checkouts
/// and a build made in another checkout can be reused here.
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Runs a command in the repository root; fails with its name if it fails.
fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("starting {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages that are missing (as root), or says which to install.
fn ensure_packages(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, probe)| !Path::new(probe).exists())
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing packages; run: sudo apt-get install -y {}",
            missing.join(" ")
        );
    }
    sh("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq"];
    args.extend(&missing);
    sh("apt-get", &args)
}

fn postgres_installed() -> bool {
    pg::pg_bin().is_some()
}

/// Builds the binaries of `packages` (debug) in one cargo run.
fn build_bins(packages: &[&str]) -> anyhow::Result<()> {
    let mut args = vec!["build"];
    for package in packages {
        args.extend(["--package", package]);
    }
    args.push("--bins");
    sh("cargo", &args)
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"))
        .unwrap_or(false);
    if !installed {
        sh("rustup", &["target", "add", "wasm32-unknown-unknown"])?;
    }
    Ok(())
}

/// The whole suite: formatting, lints (host crates, and the UI for wasm32), every test on
/// SQLite and PostgreSQL, the API fuzzed on both, then the desktop app end to end through
/// WebDriver under Xvfb.
fn test() -> anyhow::Result<()> {
    if !postgres_installed() {
        ensure_packages(&[("postgresql", "/usr/lib/postgresql/__absent__")])?;
    }
    // The event relay's NATS stories start `nats-server -js` from the Debian package.
    ensure_packages(&[("nats-server", "/usr/sbin/nats-server")])?;
    // The SLO alert rules are unit-tested with `promtool` (Debian's prometheus package).
    ensure_packages(&[("prometheus", "/usr/bin/promtool")])?;
    // The scale-out stories (crates/central/tests/cluster) start redis-server and haproxy.
    ensure_packages(&[
        ("redis-server", "/usr/bin/redis-server"),
        ("haproxy", "/usr/sbin/haproxy"),
    ])?;
    // Store time zones (reports group by the store's local day) come from the system's tzdata.
    ensure_packages(&[("tzdata", "/usr/share/zoneinfo/Europe/Amsterdam")])?;
    ensure_desktop_tools()?;
    sh("cargo", &["fmt", "--all", "--", "--check"])?;
    // The shell embeds ui/dist: the UI is built before anything compiles the shell.
    build_ui()?;
    sh(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    sh(
        "cargo",
        &[
            "clippy",
            "--package",
            "kassa-ui",
            "--target",
            "wasm32-unknown-unknown",
            "--release",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    sh(
        "cargo",
        &[
            "check",
            "--package",
            "kassa-domain",
            "--target",
            "wasm32-unknown-unknown",
        ],
    )?;
    // The end-to-end suite (tests/, package kassa-e2e) runs the programs' binaries.
    build_bins(&["kassa-central", "kassa-desktop"])?;
    sh("cargo", &["test", "--workspace"])?;
    // The API contract from outside: spec validation, a generated client, schemathesis.
    fuzz::fuzz()?;
    desktop_e2e()?;
    println!("\nall tests passed");
    Ok(())
}

/// Reruns one seed of the money model test (`crates/central/tests/api/model.rs`) on SQLite and
/// PostgreSQL, printing its steps: `./x test --model-seed 17`.
fn model_seed(seed: Option<&str>) -> anyhow::Result<()> {
    let Some(seed) = seed.filter(|s| s.parse::<u64>().is_ok()) else {
        bail!("--model-seed needs a seed, a whole number: ./x test --model-seed 17");
    };
    if !postgres_installed() {
        ensure_packages(&[("postgresql", "/usr/lib/postgresql/__absent__")])?;
    }
    let args = [
        "test",
        "-p",
        "kassa-central",
        "--test",
        "api",
        "model",
        "--",
        "--nocapture",
    ];
    println!("+ KASSA_MODEL_SEED={seed} cargo {}", args.join(" "));
    let status = Command::new("cargo")
        .args(args)
        .env("KASSA_MODEL_SEED", seed)
        .current_dir(root())
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("model seed {seed} failed ({status})");
    }
    Ok(())
}

/// The desktop app driven through tauri-driver + WebKitWebDriver on a virtual display. Same
/// `--workspace` selection as `cargo test` above, so nothing is rebuilt with other features.
fn desktop_e2e() -> anyhow::Result<()> {
    sh(
        "xvfb-run",
        &[
            "-a",
            "dbus-run-session",
            "--",
            "cargo",
            "test",
            "--workspace",
            "--test",
            "desktop",
            "--",
            "--ignored",
            "--nocapture",
        ],
    )
}

/// What building and driving the desktop app needs (Debian names, probed by a file each).
const DESKTOP_PACKAGES: [(&str, &str); 15] = [
    ("libwebkit2gtk-4.1-dev", "/usr/include/webkitgtk-4.1"),
    ("libgtk-3-dev", "/usr/include/gtk-3.0"),
    ("librsvg2-dev", "/usr/include/librsvg-2.0"),
    (
        "libayatana-appindicator3-dev",
        "/usr/include/libayatana-appindicator3-0.1",
    ),
    ("libssl-dev", "/usr/include/openssl/ssl.h"),
    ("pkg-config", "/usr/bin/pkg-config"),
    ("build-essential", "/usr/bin/make"),
    ("file", "/usr/bin/file"),
    ("libxdo-dev", "/usr/include/xdo.h"),
    ("xvfb", "/usr/bin/xvfb-run"),
    ("webkit2gtk-driver", "/usr/bin/WebKitWebDriver"),
    ("dbus-x11", "/usr/bin/dbus-launch"),
    ("xdotool", "/usr/bin/xdotool"),
    ("imagemagick", "/usr/bin/convert-im6.q16"),
    ("keyutils", "/usr/bin/keyctl"),
];

/// System packages, the wasm target, wasm-bindgen-cli at Cargo.lock's version, tauri-driver.
fn ensure_desktop_tools() -> anyhow::Result<()> {
    ensure_packages(&DESKTOP_PACKAGES)?;
    ensure_wasm_target()?;
    let version = locked_version("wasm-bindgen")?;
    // --locked fails for wasm-bindgen-cli here (a locked dependency newer than the registry).
    ensure_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", &version, false)?;
    ensure_cargo_tool("tauri-driver", "tauri-driver", "", true)
}

/// The version of `package` in Cargo.lock.
fn locked_version(package: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .with_context(|| format!("{package} is not in Cargo.lock"))?
        + needle.len();
    let rest = &lock[start..];
    Ok(rest[..rest.find('"').unwrap_or(0)].to_owned())
}

/// Installs a cargo tool unless `<bin> --version` already says `version` (any, when empty).
fn ensure_cargo_tool(bin: &str, krate: &str, version: &str, locked: bool) -> anyhow::Result<()> {
    let installed = Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(version));
    if installed {
        return Ok(());
    }
    let mut args = vec!["install", krate];
    if !version.is_empty() {
        args.extend(["--version", version]);
    }
    if locked {
        args.push("--locked");
    }
    sh("cargo", &args)
}

/// The UI: the Yew crate for wasm32 (release: a small, fast app), wasm-bindgen into
/// `ui/dist` with the page and the styles beside it. The shell embeds `ui/dist`.
fn build_ui() -> anyhow::Result<()> {
    sh(
        "cargo",
        &[
            "build",
            "--package",
            "kassa-ui",
            "--target",
            "wasm32-unknown-unknown",
            "--release",
        ],
    )?;
    let wasm = target_dir().join("wasm32-unknown-unknown/release/kassa_ui.wasm");
    let dist = root().join("ui/dist");
    std::fs::create_dir_all(&dist).context("creating ui/dist")?;
    let wasm = wasm.display().to_string();
    sh(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--no-typescript",
            "--out-dir",
            "ui/dist",
            "--out-name",
            "app",
            &wasm,
        ],
    )?;
    for file in ["index.html", "style.css"] {
        std::fs::copy(root().join("ui").join(file), dist.join(file))
            .with_context(|| format!("copying ui/{file} to ui/dist"))?;
    }
    Ok(())
}

/// Kills a background child when dropped, so ctrl-c or an error leaves nothing running.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()))
}

/// Waits until Central answers `/health` (bounded).
fn wait_for_health(bind: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if std::net::TcpStream::connect(bind).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("Kassa Central did not start listening on {bind}")
}

/// Central on SQLite with the demo store, the payment simulator beside it, and Kassa Register
/// paired with it and signed in as the demo cashier, ready to scan.
fn run() -> anyhow::Result<()> {
    if !has_display() {
        bail!(
            "no display here (DISPLAY is not set): the register app needs one. Run under a \
             virtual display:\n\n    xvfb-run -a dbus-run-session -- ./x run\n"
        );
    }
    ensure_desktop_tools()?;
    build_ui()?;
    build_bins(&["kassa-central", "kassa-processor-sim", "kassa-desktop"])?;
    let bin = target_dir().join("debug");
    let db = root().join("kassa-central.db");
    let register_data = root().join("kassa-register-demo");
    if !db.exists() && register_data.exists() {
        // A new Central knows nothing of the old pairing: pair the demo register again.
        std::fs::remove_dir_all(&register_data).context("removing the old demo register")?;
    }
    let db_url = format!("sqlite://{}", db.display());
    let bind = std::env::var("KASSA_BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let sim_bind = "127.0.0.1:8090";
    let status = Command::new(bin.join("kassa-central"))
        .arg("demo")
        .env("KASSA_DATABASE_URL", &db_url)
        .status()
        .context("loading the demo store")?;
    if !status.success() {
        bail!("kassa-central demo failed");
    }
    let _sim = Background(
        Command::new(bin.join("kassa-processor-sim"))
            .args([
                "--bind",
                sim_bind,
                "--webhook-url",
                &format!("http://{bind}/v1/webhooks/payments"),
            ])
            .spawn()
            .context("starting the payment processor simulator")?,
    );
    let _central = Background(
        Command::new(bin.join("kassa-central"))
            .arg("serve")
            .env("KASSA_DATABASE_URL", &db_url)
            .env("KASSA_BIND", &bind)
            .env("KASSA_PROCESSOR_URL", format!("http://{sim_bind}"))
            .env("KASSA_PROCESSOR_SECRET", "sk_test_kassa")
            .env("KASSA_WEBHOOK_SECRET", "whsec_demo")
            .spawn()
            .context("running kassa-central serve")?,
    );
    wait_for_health(&bind)?;
    println!("\nKassa Central: http://{bind}   (OpenAPI: http://{bind}/openapi.json)");
    println!("payment processor simulator: http://{sim_bind}");
    println!("Kassa Register: paired as STORE-1 / R1, signed in as the demo cashier (cashier / cashier-pass-1);");
    println!("  managers: manager / manager-pass-1. Close the window to stop everything.");
    println!("demo barcodes to scan (type the digits and Enter, as a scanner does):");
    println!("  2000000000015 (DEMO-0001), 2000000000022 (DEMO-0002), 2000000000039 (DEMO-0003)\n");
    let status = Command::new(bin.join("kassa-register"))
        .env("KASSA_CENTRAL_URL", format!("http://{bind}"))
        .env("KASSA_REGISTER_DATA", &register_data)
        .env("KASSA_SECRETS_SERVICE", "kassa-register-demo")
        .env("KASSA_PAIR_MANAGER", "manager")
        .env("KASSA_PAIR_PASSWORD", "manager-pass-1")
        .env("KASSA_SIGN_IN_USER", "cashier")
        .env("KASSA_SIGN_IN_PASSWORD", "cashier-pass-1")
        .status()
        .context("running Kassa Register")?;
    if !status.success() {
        bail!("Kassa Register exited with {status}");
    }
    Ok(())
}

/// What a scaled-out Central needs besides PostgreSQL: NATS, Redis, HAProxy.
const CLUSTER_PACKAGES: [(&str, &str); 3] = [
    ("nats-server", "/usr/sbin/nats-server"),
    ("redis-server", "/usr/bin/redis-server"),
    ("haproxy", "/usr/sbin/haproxy"),
];

/// The scaled-out topology on one machine (PostgreSQL primary and streaming replica, Redis,
/// NATS, three Centrals, HAProxy on 127.0.0.1:8080 or `KASSA_CLUSTER_PORT`, the demo store and
/// the payment simulator), until Ctrl-C (`crates/bench/src/scale.rs`, docs/scaling.md).
fn cluster() -> anyhow::Result<()> {
    if !postgres_installed() {
        ensure_packages(&[("postgresql", "/usr/lib/postgresql/__absent__")])?;
    }
    ensure_packages(&CLUSTER_PACKAGES)?;
    build_bins(&["kassa-central", "kassa-processor-sim", "kassa-bench"])?;
    let bin = target_dir().join("debug").join("kassa-bench");
    // Ctrl-C reaches the child too (same process group); it stops everything it started.
    let status = Command::new(bin)
        .arg("cluster")
        .status()
        .context("running the cluster")?;
    if !status.success() {
        bail!("the cluster exited with {status}");
    }
    Ok(())
}

/// Benchmarks print figures with their raw baseline; they never assert.
fn bench(args: &[String]) -> anyhow::Result<()> {
    let scenario = args.first().map_or("all", String::as_str);
    if !postgres_installed() {
        ensure_packages(&[("postgresql", "/usr/lib/postgresql/__absent__")])?;
    }
    ensure_packages(&[("nats-server", "/usr/sbin/nats-server")])?;
    if scenario == "flash-sale" {
        ensure_packages(&[("redis-server", "/usr/bin/redis-server")])?;
    }
    if scenario == "scale" {
        ensure_packages(&CLUSTER_PACKAGES)?;
        // The scale scenario runs kassa-central processes from beside kassa-bench.
        sh(
            "cargo",
            &["build", "--release", "--package", "kassa-central", "--bins"],
        )?;
    }
    let mut run = vec![
        "run",
        "--release",
        "--package",
        "kassa-bench",
        "--",
        scenario,
    ];
    // `checkout-tracing [sqlite|postgres|both] [rounds]` takes its own arguments.
    run.extend(args.iter().skip(1).map(String::as_str));
    sh("cargo", &run)
}
