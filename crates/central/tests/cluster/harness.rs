//! What the cluster stories share: the binary, a fresh PostgreSQL database, instances started at
//! once, logins.

use std::path::PathBuf;
use std::time::Duration;

use kassa_central::devtools::cluster::{haproxy_config, CentralProcess, HaProxy};
use kassa_central::devtools::PgCluster;
use serde_json::Value;

/// Bound on every instance's start-up (migrations and search catch-up included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kassa-central"))
}

/// A new empty database on the shared throwaway cluster; `None` when PostgreSQL is missing.
pub async fn postgres_database() -> Option<String> {
    let cluster = PgCluster::shared()?;
    Some(cluster.create_database().await.unwrap())
}

/// The environment every instance of one cluster shares: the database, generous limits (stories
/// that test a limit lower it), quick sweeps.
pub fn base_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KASSA_DATABASE_URL", database_url.to_owned()),
        ("KASSA_LOGIN_PER_IP_PER_MINUTE", "100000".into()),
        ("KASSA_LOGIN_PER_USERNAME_PER_MINUTE", "100000".into()),
        ("KASSA_USER_REQUESTS_PER_SECOND", "100000".into()),
        ("KASSA_USER_REQUESTS_BURST", "100000".into()),
        ("KASSA_DB_CONNECTIONS_MAX", "8".into()),
        ("RUST_LOG", "info".into()),
    ]
}

/// Starts `n` instances at the same moment and waits for each to be ready.
pub async fn start_instances(n: usize, env: &[(&str, String)]) -> Vec<CentralProcess> {
    let mut instances: Vec<CentralProcess> = (0..n)
        .map(|_| CentralProcess::start(&binary(), env).unwrap())
        .collect();
    let waits = instances
        .iter_mut()
        .map(|instance| instance.wait_ready(READY_TIMEOUT));
    for ready in futures::future::join_all(waits).await {
        ready.unwrap();
    }
    instances
}

/// Runs `kassa-central demo` against `database_url` (users, locations, products, stock).
pub fn load_demo(database_url: &str) {
    let out = std::process::Command::new(binary())
        .arg("demo")
        .env("KASSA_DATABASE_URL", database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kassa-central demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Signs in at `base`; the token response.
pub async fn login(client: &reqwest::Client, base: &str, username: &str, password: &str) -> Value {
    let response = client
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login of {username} at {base}");
    response.json().await.unwrap()
}

/// Adds a user through `kassa-central user add` (quicker than the demo store).
pub fn add_user(database_url: &str, username: &str, password: &str, role: &str) {
    let out = std::process::Command::new(binary())
        .args(["user", "add", "--username", username, "--role", role])
        .env("KASSA_DATABASE_URL", database_url)
        .env("KASSA_PASSWORD", password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kassa-central user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `GET path` at `base` with `token`; the status.
pub async fn get_status(client: &reqwest::Client, base: &str, path: &str, token: &str) -> u16 {
    client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The value of the unlabelled gauge `name` on `base`'s `/metrics`, if exported.
pub async fn gauge(client: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// `base_env` plus `extra` (later entries win).
pub fn env_with(
    database_url: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = base_env(database_url);
    env.extend_from_slice(extra);
    env
}

/// HAProxy from `deploy/haproxy.cfg` in front of `instances`; `None` when haproxy is missing.
pub fn balancer(instances: &[CentralProcess]) -> Option<HaProxy> {
    let deployed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/haproxy.cfg"
    ))
    .unwrap();
    let backends: Vec<String> = instances
        .iter()
        .map(|i| format!("127.0.0.1:{}", i.port))
        .collect();
    HaProxy::start(|port| haproxy_config(&deployed, port, &backends))
        .map(|started| started.unwrap())
}
