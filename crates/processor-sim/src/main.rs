//! `kassa-processor-sim`: runs the Stripe-compatible simulator on a fixed address for the demo
//! and end-to-end tests.

use anyhow::Context as _;
use clap::Parser;
use kassa_processor_sim::{serve, SimConfig, SimState};
use tokio::net::TcpListener;

/// A Stripe-compatible payment processor simulator (in memory).
#[derive(Debug, Parser)]
#[command(name = "kassa-processor-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "KASSA_SIM_BIND", default_value = "127.0.0.1:8090")]
    bind: String,
    /// Where to POST webhook events (Kassa Central's /v1/webhooks/payments).
    #[arg(long, env = "KASSA_SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// How long a `pm_sim_processing` payment stays `processing` before it succeeds (ms).
    #[arg(long, env = "KASSA_SIM_PROCESSING_DELAY_MS", default_value_t = 2000)]
    processing_delay_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = SimConfig {
        webhook_url: args.webhook_url,
        webhook_secret: std::env::var("KASSA_SIM_WEBHOOK_SECRET")
            .unwrap_or_else(|_| "whsec_demo".into())
            .into_bytes(),
        api_key: std::env::var("KASSA_SIM_API_KEY").unwrap_or_else(|_| "sk_test_kassa".into()),
        processing_delay: std::time::Duration::from_millis(args.processing_delay_ms),
    };
    let state = SimState::new(config)?;
    let listener = TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("kassa-processor-sim listening on http://{addr}");
    match state.webhook_url() {
        Some(url) => println!("webhooks go to {url}"),
        None => println!("no --webhook-url: events are kept, not delivered"),
    }
    serve(listener, state, async {
        // If the signal cannot be installed, run until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
    .await
}
