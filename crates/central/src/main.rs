//! `kassa-central`: serve the API, migrate, add users, load the demo store.

use std::io::Read;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kassa_central::{build_state, demo, store, Config};
use kassa_domain::{Role, Username};

#[derive(Parser)]
#[command(
    name = "kassa-central",
    about = "Kassa Central: the API behind every register and the online shop"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on KASSA_BIND (default 127.0.0.1:8080).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Load the demo store (locations, ~200 products, demo users). Safe to run twice.
    Demo,
    /// Rebuild the search index from the database (stop `serve` first: it holds the index).
    Reindex,
    /// Recompute every co-purchase score now (`serve` also does it every
    /// KASSA_RECOMMEND_INTERVAL_S).
    Recommend,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password comes from KASSA_PASSWORD or stdin, never a flag.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
    },
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Deletes expired carts every ten minutes.
fn spawn_cart_purge(state: kassa_central::AppState) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            ticker.tick().await;
            match kassa_central::carts::purge_expired(&state.db).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "expired carts deleted"),
                Err(e) => tracing::warn!(error = ?e, "cart purge failed"),
            }
        }
    });
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("KASSA_PASSWORD") {
        return Ok(password);
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    Ok(input.trim_end_matches(['\n', '\r']).to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    // Logs, and traces when OTEL_EXPORTER_OTLP_ENDPOINT is set; flushed when main returns.
    let _telemetry = kassa_central::telemetry::init(config.log_json)?;
    match cli.command {
        Command::Serve => {
            let bind = config.bind;
            let sweep_interval = config.sweep_interval;
            let state = build_state(config).await?;
            kassa_central::stock::spawn_sweeper(state.clone(), sweep_interval);
            // Runs at once: whatever a crash left pending is settled at start-up.
            kassa_central::payments::reconcile::spawn_reconciler(
                state.clone(),
                state.config.reconcile_interval,
            );
            spawn_cart_purge(state.clone());
            kassa_central::stock::hot_gate::spawn_reconciler(
                state.clone(),
                state.config.hot_gate_reconcile_interval,
            );
            let recommend_interval = state.config.recommend_interval;
            kassa_central::recommend::spawn_recommender(state.clone(), recommend_interval);
            let indexed = kassa_central::search::index::refresh(&state.search, &state.db).await?;
            tracing::info!(indexed, "search index caught up");
            kassa_central::search::spawn_refresher(state.clone(), state.config.search_refresh);
            let relay = kassa_central::events::spawn(state.db.clone(), &state.config);
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("binding {bind}"))?;
            tracing::info!(
                "Kassa Central listening on http://{}",
                listener.local_addr()?
            );
            let grace = state.config.shutdown_grace;
            kassa_central::serve(listener, state, shutdown_signal()).await?;
            relay.stop(grace).await;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            let db =
                store::Db::connect(&config.database_url, &store::PoolLimits::default()).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::User {
            command: UserCommand::Add { username, role },
        } => {
            let username = Username::parse(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("role: {e}"))?;
            let password = read_password()?;
            kassa_central::auth::validate_password(&password)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let db =
                store::Db::connect(&config.database_url, &store::PoolLimits::default()).await?;
            db.migrate().await?;
            let hash = kassa_central::auth::hash_password(password).await?;
            let user = store::users::insert(&db, &username, &hash, role)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created user {} ({}) with role {}",
                user.username,
                user.id,
                user.role.as_str()
            );
            Ok(())
        }
        Command::Recommend => {
            let db =
                store::Db::connect(&config.database_url, &store::PoolLimits::default()).await?;
            db.migrate().await?;
            let params = kassa_central::recommend::model::Params {
                top_k: config.recommend_top_k,
                min_support: config.recommend_min_support,
            };
            let recommender = kassa_central::recommend::load(&db, params).await?;
            let report = kassa_central::recommend::run_batch(&db, &recommender).await?;
            println!(
                "co-purchase scores computed from {} paid orders: {} products have a list, {} lists changed",
                report.orders, report.lists, report.lists_changed
            );
            Ok(())
        }
        Command::Reindex => {
            let db =
                store::Db::connect(&config.database_url, &store::PoolLimits::default()).await?;
            db.migrate().await?;
            let search = kassa_central::search::open(&config)
                .context("opening the search index (is `serve` running? stop it first)")?;
            let n = kassa_central::search::index::rebuild(&search, &db).await?;
            println!(
                "search index rebuilt in {}: {n} products indexed",
                config
                    .search_dir
                    .as_deref()
                    .map_or("memory".into(), |d| d.display().to_string())
            );
            Ok(())
        }
        Command::Demo => {
            let db =
                store::Db::connect(&config.database_url, &store::PoolLimits::default()).await?;
            db.migrate().await?;
            demo::load(&db).await?;
            // The demo needs no search index (and `serve` may hold the one on disk).
            let state = build_state(Config {
                search_dir: None,
                ..config
            })
            .await?;
            demo::load_order_history(&state).await?;
            kassa_central::recommend::run_batch(&state.db, &state.recommender).await?;
            println!("demo store loaded: locations STORE-1, WAREHOUSE; users:");
            for (username, password, role) in demo::DEMO_USERS {
                println!("  {username:<9} {password:<16} ({})", role.as_str());
            }
            Ok(())
        }
    }
}
