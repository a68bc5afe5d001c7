//! The test harness: the real server on port 0 with a fresh database per test, on SQLite and on
//! a throwaway PostgreSQL cluster started from the system's binaries.

use kassa_central::store;
use kassa_central::{AppState, Config};
use kassa_domain::api::TokenResponse;
use kassa_domain::{Role, Username};
use serde_json::Value;
use uuid::Uuid;

/// [`story!`] for stories that need Central configured differently: `story_with!(tweak: a, b)`
/// runs `a(app)` and `b(app)` on a Central whose config `tweak(&mut Config)` changed, once per
/// backend.
#[macro_export]
macro_rules! story_with {
    ($tweak:ident: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                let app = $crate::helpers::TestApp::spawn_with($crate::helpers::Db::Sqlite, super::$tweak);
                super::$name(app.await.unwrap()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                if let Some(app) = $crate::helpers::TestApp::spawn_with($crate::helpers::Db::Postgres, super::$tweak).await {
                    super::$name(app).await
                }
            }
        }
    )*};
}

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
    /// The payment processor simulator this Central talks to (webhooks point back here).
    pub sim: Option<kassa_processor_sim::SimHandle>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// The webhook signing secret test apps and their simulator share.
pub const WEBHOOK_SECRET: &str = "whsec_demo";

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
        // Stories that race hundreds of buyers measure the database, not load shedding
        // (maintenance.rs tests the shedding with its own bound).
        inflight_max: 100_000,
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
        let sim = kassa_processor_sim::spawn(kassa_processor_sim::SimConfig::default())
            .await
            .expect("starting the processor simulator");
        let mut config = test_config(url);
        config.processor_url = Some(sim.base_url.clone());
        config.webhook_secret = Some(kassa_central::config::Secret::new(WEBHOOK_SECRET));
        config.processor_timeout = std::time::Duration::from_secs(2);
        tweak(&mut config);
        let mut app = Self::start(config, dir).await;
        sim.set_webhook_url(Some(app.url("/v1/webhooks/payments")));
        app.sim = Some(sim);
        Some(app)
    }

    pub async fn start(config: Config, dir: Option<tempfile::TempDir>) -> Self {
        let state = kassa_central::build_state(config)
            .await
            .expect("building state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        tokio::spawn(async move {
            kassa_central::serve(listener, serve_state, async {
                let _ = rx.await;
            })
            .await
            .expect("serving");
        });
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        Self {
            base,
            client,
            state,
            sim: None,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a user with `role` straight in the database and signs them in.
    pub async fn user(&self, role: Role) -> Session {
        let username = format!(
            "{}-{}",
            role.as_str(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let password = "correct horse battery".to_owned();
        let hash = kassa_central::auth::hash_password(password.clone())
            .await
            .unwrap();
        store::users::insert(
            &self.state.db,
            &Username::parse(&username).unwrap(),
            &hash,
            role,
        )
        .await
        .unwrap();
        let tokens = self.login(&username, &password).await;
        Session {
            username,
            password,
            tokens,
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> TokenResponse {
        let response = self
            .client
            .post(self.url("/v1/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "login of {username}: {}",
            response.text().await.unwrap()
        );
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
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
    assert_eq!(
        body["error"]["code"], code,
        "unexpected error code in {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
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
            Some((
                cluster
                    .create_database()
                    .await
                    .expect("creating a test database"),
                None,
            ))
        }
    }
}

pub use kassa_central::devtools::PgCluster;
