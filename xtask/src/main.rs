//! `cargo xtask` (via `./x`): what people and CI run. One place says how Kassa is built, run,
//! tested and benchmarked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};

use anyhow::{bail, Context};

const USAGE: &str = "usage: ./x run | ./x test | ./x bench <checkout|search|relay|all>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(),
        Some("test") => test(),
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

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
    std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .any(|d| d.path().join("bin/initdb").exists())
        })
        .unwrap_or(false)
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

/// The whole suite: formatting, lints, the domain on wasm, every test on SQLite and PostgreSQL.
fn test() -> anyhow::Result<()> {
    if !postgres_installed() {
        ensure_packages(&[("postgresql", "/usr/lib/postgresql/__absent__")])?;
    }
    // The event relay's NATS stories start `nats-server -js` from the Debian package.
    ensure_packages(&[("nats-server", "/usr/sbin/nats-server")])?;
    ensure_wasm_target()?;
    sh("cargo", &["fmt", "--all", "--", "--check"])?;
    sh(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--exclude",
            "kassa-ui",
            "--exclude",
            "kassa-desktop",
            "--all-targets",
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
    // The desktop shell and its wasm UI build apart (WebKitGTK packages, wasm-bindgen): see
    // crates/register/README.md, "Desktop shell".
    sh(
        "cargo",
        &[
            "test",
            "--workspace",
            "--exclude",
            "kassa-ui",
            "--exclude",
            "kassa-desktop",
        ],
    )?;
    println!("\nall tests passed");
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

/// Central on SQLite with the demo store, and the payment simulator beside it.
fn run() -> anyhow::Result<()> {
    sh(
        "cargo",
        &[
            "build",
            "--package",
            "kassa-central",
            "--package",
            "kassa-processor-sim",
            "--bins",
        ],
    )?;
    let bin = target_dir().join("debug");
    let db = root().join("kassa-central.db");
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
    println!("\nKassa Central: http://{bind}   (OpenAPI: http://{bind}/openapi.json)");
    println!("payment processor simulator: http://{sim_bind}");
    println!(
        "try: curl -s -X POST http://{bind}/v1/auth/login -H 'content-type: application/json' \\"
    );
    println!("       -d '{{\"username\":\"cashier\",\"password\":\"cashier-pass-1\"}}'");
    println!("demo barcodes: 2000000000015 (DEMO-0001), 2000000000022 (DEMO-0002), 2000000000039 (DEMO-0003)\n");
    let status = Command::new(bin.join("kassa-central"))
        .arg("serve")
        .env("KASSA_DATABASE_URL", &db_url)
        .env("KASSA_BIND", &bind)
        .env("KASSA_PROCESSOR_URL", format!("http://{sim_bind}"))
        .env("KASSA_PROCESSOR_SECRET", "sk_test_kassa")
        .env("KASSA_WEBHOOK_SECRET", "whsec_demo")
        .status()
        .context("running kassa-central serve")?;
    if !status.success() {
        bail!("kassa-central serve exited with {status}");
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
    sh(
        "cargo",
        &[
            "run",
            "--release",
            "--package",
            "kassa-central",
            "--bin",
            "kassa-bench",
            "--",
            scenario,
        ],
    )
}
