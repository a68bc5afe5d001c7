//! The test harness: the real server on port 0 with a fresh database per test, on SQLite and on
//! a throwaway PostgreSQL cluster started from the system's binaries.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kassa_central::store::{self, Backend};
use kassa_central::{AppState, Config};
use kassa_domain::api::TokenResponse;
use kassa_domain::{Role, Username};
use serde_json::Value;
use uuid::Uuid;

/// Runs `$name(app)` once per backend, as `$name::on_sqlite` and `$name::on_postgres`.
#[macro_export]
macro_rules! story {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                super::$name($crate::helpers::TestApp::spawn($crate::helpers::Db::Sqlite).await.unwrap()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Db::Postgres).await {
                    super::$name(app).await
                }
            }
        }
    )*};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running Central with its own database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub backend: Backend,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// Generous limits so tests measure behaviour, not the rate limiter (tests of the limiter
/// lower them).
pub fn test_config(database_url: String) -> Config {
    Config {
        database_url,
        login_per_ip_per_minute: 10_000,
        login_per_username_per_minute: 10_000,
        user_requests_per_second: 100_000,
        user_requests_burst: 100_000,
        db_connections_max: 8,
        ..Config::default()
    }
}

impl TestApp {
    /// Starts Central on a fresh database; `None` when PostgreSQL is wanted but not installed
    /// (and not required).
    pub async fn spawn(db: Db) -> Option<Self> {
        Self::spawn_with(db, |_| {}).await
    }

    pub async fn spawn_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let (url, dir) = fresh_database(db).await?;
        let mut config = test_config(url);
        tweak(&mut config);
        Some(Self::start(config, dir).await)
    }

    pub async fn start(config: Config, dir: Option<tempfile::TempDir>) -> Self {
        let state = kassa_central::build_state(config).await.expect("building state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        let server = tokio::spawn(async move {
            kassa_central::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await
            .expect("serving");
        });
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let backend = state.db.backend();
        Self { base, client, state, backend, shutdown: Some(tx), server: Some(server), _dir: dir }
    }

    /// Stops serving (in-flight requests finish).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a user with `role` straight in the database and signs them in.
    pub async fn user(&self, role: Role) -> Session {
        let username = format!("{}-{}", role.as_str(), &Uuid::new_v4().simple().to_string()[..8]);
        let password = "correct horse battery".to_owned();
        let hash = kassa_central::auth::hash_password(password.clone()).await.unwrap();
        store::users::insert(&self.state.db, &Username::parse(&username).unwrap(), &hash, role).await.unwrap();
        let tokens = self.login(&username, &password).await;
        Session { username, password, tokens }
    }

    pub async fn login(&self, username: &str, password: &str) -> TokenResponse {
        let response = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login of {username}: {}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(token).json(body).send().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A signed-in test user.
pub struct Session {
    pub username: String,
    pub password: String,
    pub tokens: TokenResponse,
}

impl Session {
    pub fn token(&self) -> &str {
        &self.tokens.access_token
    }
}

/// Asserts the common error shape and returns the body.
pub async fn error_body(response: reqwest::Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert_eq!(actual, status, "unexpected status, body {body}");
    assert_eq!(body["error"]["code"], code, "unexpected error code in {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message in {body}");
    body
}

async fn fresh_database(db: Db) -> Option<(String, Option<tempfile::TempDir>)> {
    match db {
        Db::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("central.db").display());
            Some((url, Some(dir)))
        }
        Db::Postgres => {
            let cluster = PgCluster::shared()?;
            Some((cluster.create_database().await, None))
        }
    }
}

/// A PostgreSQL cluster in a temp dir on a free loopback port, one per test process. A watchdog
/// shell stops it and deletes its files when the test process exits, however it exits.
pub struct PgCluster {
    port: u16,
}

static CLUSTER: OnceLock<Option<PgCluster>> = OnceLock::new();

fn find_pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run_pg(bin: &Path, tool: &str, args: &[&str], as_postgres: bool) {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    };
    let out = cmd.args(args).output().unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgCluster {
    pub fn shared() -> Option<&'static PgCluster> {
        CLUSTER.get_or_init(Self::start).as_ref()
    }

    fn start() -> Option<Self> {
        let Some(bin) = find_pg_bin() else {
            assert!(
                std::env::var("KASSA_REQUIRE_POSTGRES").is_err(),
                "KASSA_REQUIRE_POSTGRES is set but no PostgreSQL binaries are under /usr/lib/postgresql"
            );
            eprintln!("\n!!! SKIPPED: PostgreSQL tests (no initdb under /usr/lib/postgresql; apt-get install postgresql) !!!\n");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("kassa-pg-").tempdir().unwrap().keep();
        let root = is_root();
        if root {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().unwrap();
            assert!(status.success(), "chown of the PostgreSQL temp dir failed");
        }
        let data = dir.join("data");
        let data_s = data.to_str().unwrap().to_owned();
        let dir_s = dir.to_str().unwrap().to_owned();
        run_pg(&bin, "initdb", &["-D", &data_s, "-A", "trust", "-U", "postgres", "-E", "UTF8"], root);
        let port = free_port();
        let opts = format!(
            "-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        );
        let log = format!("{dir_s}/log");
        run_pg(&bin, "pg_ctl", &["-D", &data_s, "-o", &opts, "-l", &log, "-w", "start"], root);
        let stop = format!(
            "{} {}/pg_ctl -D {data_s} -m immediate stop >/dev/null 2>&1; rm -rf {dir_s}",
            if root { "runuser -u postgres --" } else { "" },
            bin.display()
        );
        let watchdog = format!("while kill -0 {} 2>/dev/null; do sleep 1; done; {stop}", std::process::id());
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting the PostgreSQL watchdog");
        Some(Self { port })
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub async fn create_database(&self) -> String {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let name = format!("t_{}", Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&self.url("postgres")).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        self.url(&name)
    }
}
