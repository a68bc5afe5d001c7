//! `./x fuzz`: the API contract checked from outside. A fresh Central with the demo store (SQLite,
//! and PostgreSQL when it is installed), the payment simulator beside it, its `/openapi.json`
//! validated by openapi-spec-validator, then schemathesis over every operation as the demo admin.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use crate::{postgres_installed, target_dir, wait_for_health, Background};

/// Pinned tools from PyPI, installed in venvs under the target dir (never in the repository).
const FUZZ_PACKAGES: &[&str] = &["schemathesis==4.32.5", "openapi-spec-validator==0.7.1"];
const CLIENT_PACKAGES: &[&str] = &["openapi-python-client==0.29.1"];
/// The time budget of one schemathesis run, and the examples per operation and phase.
const FUZZ_TIME_S: &str = "60";
const FUZZ_EXAMPLES_MAX: &str = "10";
const CHECKS: &str =
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// The fuzz run on each backend; fails on any failure or error schemathesis reports.
pub fn fuzz() -> anyhow::Result<()> {
    let has_venv = Command::new("python3")
        .args(["-m", "venv", "--help"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_venv {
        crate::ensure_packages(&[("python3-venv", "/usr/lib/python3/__absent__")])?;
    }
    let venv = ensure_venv("fuzz-venv", FUZZ_PACKAGES)?;
    crate::build_bins(&["kassa-central", "kassa-processor-sim"])?;
    let mut backends = vec![Backend::Sqlite];
    if postgres_installed() {
        backends.push(Backend::Postgres);
    } else if std::env::var_os("KASSA_REQUIRE_POSTGRES").is_some() {
        bail!("KASSA_REQUIRE_POSTGRES is set but PostgreSQL is not installed");
    }
    for backend in backends {
        fuzz_on(&venv, backend)?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// The venv `name` with `packages`; reused while its recorded pins match.
fn ensure_venv(name: &str, packages: &[&str]) -> anyhow::Result<PathBuf> {
    let venv = target_dir().join(name);
    let stamp = venv.join("kassa-pins.txt");
    let pins = packages.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == pins) {
        return Ok(venv);
    }
    let venv_s = venv.to_str().context("target dir is not UTF-8")?;
    crate::sh("python3", &["-m", "venv", venv_s])?;
    let pip = venv.join("bin/pip");
    let mut args = vec!["install", "--quiet"];
    args.extend(packages);
    crate::sh(pip.to_str().context("venv path")?, &args)?;
    std::fs::write(&stamp, pins).context("writing the venv's pins")?;
    Ok(venv)
}

fn fuzz_on(venv: &Path, backend: Backend) -> anyhow::Result<()> {
    println!("\n== fuzzing Kassa Central on {backend:?} ==");
    let dir = std::env::temp_dir().join(format!("kassa-fuzz-{}-{backend:?}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the fuzz dir")?;
    let (_pg, db_url) = match backend {
        Backend::Sqlite => (
            None,
            format!("sqlite://{}?mode=rwc", dir.join("kassa.db").display()),
        ),
        Backend::Postgres => {
            let pg = crate::pg::Cluster::start(&dir)?;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let result = serve_and_fuzz(venv, &dir, &db_url, matches!(backend, Backend::Sqlite));
    drop(_pg);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn serve_and_fuzz(venv: &Path, dir: &Path, db_url: &str, with_client: bool) -> anyhow::Result<()> {
    let bin = target_dir().join("debug");
    let bind = format!("127.0.0.1:{}", free_port()?);
    let sim_bind = format!("127.0.0.1:{}", free_port()?);
    let central = |command: &str| {
        let mut cmd = Command::new(bin.join("kassa-central"));
        cmd.arg(command)
            .current_dir(dir)
            .env("KASSA_DATABASE_URL", db_url)
            .env("KASSA_BIND", &bind)
            .env("KASSA_PROCESSOR_URL", format!("http://{sim_bind}"))
            .env("KASSA_PROCESSOR_SECRET", "sk_test_kassa")
            .env("KASSA_WEBHOOK_SECRET", "whsec_demo")
            // The fuzzer is one user sending many requests: the per-user limit is not under test.
            .env("KASSA_USER_REQUESTS_PER_SECOND", "100000")
            .env("KASSA_USER_REQUESTS_BURST", "100000")
            .env("RUST_LOG", "warn");
        cmd
    };
    let status = central("demo")
        .stdout(Stdio::null())
        .status()
        .context("loading the demo store")?;
    if !status.success() {
        bail!("kassa-central demo failed ({status})");
    }
    let _sim = Background(
        Command::new(bin.join("kassa-processor-sim"))
            .args(["--bind", &sim_bind])
            .args([
                "--webhook-url",
                &format!("http://{bind}/v1/webhooks/payments"),
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .context("starting the payment processor simulator")?,
    );
    let log = std::fs::File::create(dir.join("central.log")).context("creating central.log")?;
    let _central = Background(
        central("serve")
            .stdout(log.try_clone().context("central.log")?)
            .stderr(log)
            .spawn()
            .context("running kassa-central serve")?,
    );
    wait_for_health(&bind)?;
    let spec = dir.join("openapi.json");
    std::fs::write(&spec, http(&bind, "GET", "/openapi.json", "", None)?)
        .context("saving the spec")?;
    run_tool(venv, "openapi-spec-validator", &[path_str(&spec)?])?;
    if with_client {
        check_client(&spec, dir)?;
    }
    // The admin's session for most operations, a throwaway one that only logout may end, and
    // a paired till's: its device session syncs offline sales and Z reports, a manager signed in at it by
    // PIN grants approvals (both refuse anyone else with 403).
    let token = login(&bind, ADMIN_LOGIN)?;
    let throwaway = login(&bind, ADMIN_LOGIN)?;
    let till = pair_till(&bind, &token)?;
    let device = login(&bind, &format!(r#"{{"register":{till}}}"#))?;
    let manager_at_till = login(
        &bind,
        &format!(r#"{{"username":"manager","pin":"2468","register":{till}}}"#),
    )?;
    let url = format!("http://{bind}");
    let mut counts = Counts::default();
    let everything_else = [
        "--exclude-operation-id",
        "logout",
        "--exclude-operation-id",
        "grant",
        "--exclude-operation-id",
        "sync_orders",
        "--exclude-operation-id",
        "sync_shift",
        "--exclude-operation-id",
        "put_read_only",
        "--exclude-operation-id",
        "put_feature",
    ];
    for (session, select, max_time) in [
        (&token, &everything_else[..], FUZZ_TIME_S),
        (&throwaway, &["--include-operation-id", "logout"], "5"),
        (&device, &["--include-operation-id", "sync_orders"], "10"),
        (&device, &["--include-operation-id", "sync_shift"], "10"),
        (&manager_at_till, &["--include-operation-id", "grant"], "5"),
        // Last: switched on, read-only mode would refuse every write fuzzed after it, and a
        // feature switched off every call to it.
        (
            &token,
            &[
                "--include-operation-id",
                "put_read_only",
                "--include-operation-id",
                "put_feature",
            ],
            "5",
        ),
    ] {
        let mut args = select.to_vec();
        args.extend(["--max-time", max_time]);
        let run = run_schemathesis(venv, &spec, &url, session, &args)?;
        if run.operations == 0 {
            bail!("schemathesis tested no operation with {select:?}: was one renamed?");
        }
        counts.add(&run);
    }
    println!(
        "fuzz summary: {} operations tested, {} cases generated, {} failures, {} errors",
        counts.operations, counts.cases, counts.failures, counts.errors
    );
    if counts.failures > 0 || counts.errors > 0 || counts.operations == 0 {
        bail!(
            "schemathesis found problems (Central's log: {})",
            dir.join("central.log").display()
        );
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Counts {
    operations: u64,
    cases: u64,
    failures: u64,
    errors: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.operations += other.operations;
        self.cases += other.cases;
        self.failures += other.failures;
        self.errors += other.errors;
    }
}

fn run_schemathesis(
    venv: &Path,
    spec: &Path,
    url: &str,
    token: &str,
    select: &[&str],
) -> anyhow::Result<Counts> {
    let auth = format!("Authorization: Bearer {token}");
    let mut args = vec![
        "run",
        path_str(spec)?,
        "--url",
        url,
        "--header",
        &auth,
        "--checks",
        CHECKS,
        "--max-examples",
        FUZZ_EXAMPLES_MAX,
        "--workers",
        "1",
        "--seed",
        "1",
        "--no-color",
    ];
    args.extend(select);
    println!("+ st {}", args.join(" ").replace(token, "[token]"));
    // Schemathesis keeps a cache in its working directory: the run's temp dir, not the checkout.
    let out = Command::new(venv.join("bin/st"))
        .args(&args)
        .current_dir(spec.parent().context("the spec's dir")?)
        .output()
        .context("running schemathesis")?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    let counts = parse_counts(&text);
    if !out.status.success() && counts.failures == 0 && counts.errors == 0 {
        bail!("schemathesis failed ({})", out.status);
    }
    Ok(counts)
}

/// Reads the summary schemathesis prints: "Tested: 45", "11504 generated, 2 found …",
/// "❌ ST101 Server error: 2", "🚫 Runtime Error: 1".
fn parse_counts(text: &str) -> Counts {
    let mut counts = Counts::default();
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.ends_with(':') && !line.contains(' ') {
            section = line;
            continue;
        }
        let last_number = || {
            line.rsplit(':')
                .next()
                .and_then(|n| n.trim().parse::<u64>().ok())
        };
        if let Some(n) = line.strip_prefix("Tested:") {
            counts.operations = n.trim().parse().unwrap_or(0);
        } else if line.contains(" generated") {
            counts.cases = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if section == "Failures:" {
            counts.failures += last_number().unwrap_or(0);
        } else if section == "Errors:" {
            counts.errors += last_number().unwrap_or(0);
        }
    }
    counts
}

/// Generates the Python client from `spec` (any warning fails) and imports every module of it.
fn check_client(spec: &Path, dir: &Path) -> anyhow::Result<()> {
    let venv = ensure_venv("client-venv", CLIENT_PACKAGES)?;
    let out = dir.join("client");
    let package = out.join("kassa_central_client");
    std::fs::create_dir_all(&out).context("creating the client dir")?;
    // No formatter run after generating (ruff is not installed): the code only has to import.
    let config = out.join("config.yaml");
    std::fs::write(&config, "post_hooks: []\n").context("writing the generator config")?;
    let args = [
        "generate",
        "--path",
        path_str(spec)?,
        "--meta",
        "none",
        "--output-path",
        path_str(&package)?,
        "--config",
        path_str(&config)?,
        "--overwrite",
        "--fail-on-warning",
    ];
    run_tool(&venv, "openapi-python-client", &args)?;
    let import_all = "import importlib, pkgutil, kassa_central_client as c\n\
        mods = [m.name for m in pkgutil.walk_packages(c.__path__, 'kassa_central_client.')]\n\
        [importlib.import_module(m) for m in mods]\n\
        print(f'generated client: {len(mods)} modules import')";
    let status = Command::new(venv.join("bin/python"))
        .args(["-c", import_all])
        .current_dir(&out)
        .status()
        .context("importing the generated client")?;
    if !status.success() {
        bail!("the generated client does not import ({status})");
    }
    Ok(())
}

fn run_tool(venv: &Path, tool: &str, args: &[&str]) -> anyhow::Result<()> {
    println!("+ {tool} {}", args.join(" "));
    let status = Command::new(venv.join("bin").join(tool))
        .args(args)
        .status()
        .with_context(|| format!("starting {tool}"))?;
    if !status.success() {
        bail!("{tool} failed ({status})");
    }
    Ok(())
}

const ADMIN_LOGIN: &str = r#"{"username":"admin","password":"admin-pass-1"}"#;

/// Pairs a till at the demo store; its credential as JSON (`{"id":…,"credential":…}`).
fn pair_till(bind: &str, admin: &str) -> anyhow::Result<String> {
    let body = r#"{"location":"STORE-1","name":"Fuzz till"}"#;
    let answer = http(bind, "POST", "/v1/registers", body, Some(admin))?;
    Ok(format!(
        r#"{{"id":"{}","credential":"{}"}}"#,
        string_field(&answer, "register_id")?,
        string_field(&answer, "credential")?
    ))
}

/// The string `field` of a flat JSON answer (ids and tokens: no escapes in them).
fn string_field<'a>(answer: &'a str, field: &str) -> anyhow::Result<&'a str> {
    answer
        .split(&format!(r#""{field}":""#))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .with_context(|| format!("no {field} in the answer: {answer}"))
}

/// Signs in with `body` (a login, or with only `register` a till's device sign-in); a new
/// session each time.
fn login(bind: &str, body: &str) -> anyhow::Result<String> {
    let path = if body.starts_with(r#"{"register""#) {
        "/v1/auth/device"
    } else {
        "/v1/auth/login"
    };
    let answer = http(bind, "POST", path, body, None)?;
    Ok(string_field(&answer, "access_token")?.to_owned())
}

/// One HTTP/1.1 request over loopback, with `bearer` as its token; returns the body of a 2xx
/// answer.
fn http(
    bind: &str,
    method: &str,
    path: &str,
    body: &str,
    bearer: Option<&str>,
) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(bind).with_context(|| format!("connecting to {bind}"))?;
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {bind}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .context("sending a request")?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .context("reading the answer")?;
    let (head, body) = answer.split_once("\r\n\r\n").context("no HTTP head")?;
    if !head.starts_with("HTTP/1.1 2") {
        bail!("{method} {path}: {}", head.lines().next().unwrap_or(""));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        bail!("{method} {path}: chunked answers are not read here");
    }
    Ok(body.to_owned())
}

pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("path is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::parse_counts;

    /// Schemathesis 4's summary as the pinned version prints it (a clean run).
    const CLEAN: &str = "
=================================== SUMMARY ====================================

API Operations:
  Selected: 54/60
  Tested: 54

Test Phases:
  ✅ Examples
  ✅ Coverage

Warnings:
  ⚠️ Authentication failed: 2 operations returned only 401/403 responses
  ⚠️ Schema validation mismatch: 16 operations mostly rejected generated data

Test cases:
  3854 generated, 3854 passed

Seed: 1
";

    /// A run with failures and errors.
    const FOUND: &str = "
API Operations:
  Selected: 3/60
  Tested: 3

Test cases:
  412 generated, 409 passed, 3 found 2 unique failures

Failures:
  ❌ ST101 Server error: 2
  ❌ Response violates schema: 1

Errors:
  🚫 Runtime Error: 1
";

    #[test]
    fn the_summary_gives_operations_cases_failures_and_errors() {
        let clean = parse_counts(CLEAN);
        assert_eq!(
            (clean.operations, clean.cases, clean.failures, clean.errors),
            (54, 3854, 0, 0),
            "warnings are not failures"
        );
        let found = parse_counts(FOUND);
        assert_eq!(
            (found.operations, found.cases, found.failures, found.errors),
            (3, 412, 3, 1)
        );
    }
}
