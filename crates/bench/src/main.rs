//! `kassa-bench <scenario>`: benchmarks that print figures, the raw baseline and their ratio.
//! Figures, not assertions; `docs/benchmarks.md` records them.

mod catalog;
mod checkout;
mod flash_sale;
mod generated;
mod leases;
mod register;
mod relay;
mod scale;
mod search;
mod sync;

use anyhow::Context;

const SCENARIOS: &str =
    "checkout|checkout-tracing|catalog|search|relay|register|sync|leases|flash-sale|scale|all";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scenario = std::env::args()
        .nth(1)
        .with_context(|| format!("usage: kassa-bench <{SCENARIOS}>"))?;
    if scenario == checkout::CHILD {
        let url = std::env::args().nth(2).context("the database url")?;
        return checkout::child(&url).await;
    }
    anyhow::ensure!(
        kassa_telemetry::otlp_endpoint().is_none(),
        "unset OTEL_EXPORTER_OTLP_ENDPOINT: the untraced runs must not export (the checkout \
         scenario makes its traced run itself)"
    );
    // Warnings only, as Central logs without tracing; the traced child installs its own.
    let _telemetry = kassa_telemetry::init(&kassa_telemetry::Options {
        otlp_traces_url: None,
        ..log_options()
    })?;
    match scenario.as_str() {
        "checkout" => checkout::run().await,
        "checkout-tracing" => {
            let args: Vec<String> = std::env::args().skip(2).collect();
            checkout::tracing(&args).await
        }
        "catalog" => catalog::run().await,
        "search" => search::run().await,
        "relay" => relay::run().await,
        "register" => register::run().await,
        // The sync scenario includes the stock leases one (shortfalls with and without).
        "sync" => {
            sync::run().await?;
            leases::run().await
        }
        "leases" => leases::run().await,
        // Not in "all": it needs redis-server, and 20 000 buyers per run take a while.
        "flash-sale" => flash_sale::run().await,
        // Not in "all": it starts whole clusters (and needs redis-server and haproxy).
        "scale" => scale::run().await,
        // `./x cluster`: the scaled-out topology until Ctrl-C (not a benchmark).
        "cluster" => scale::cluster().await,
        "all" => {
            checkout::run().await?;
            catalog::run().await?;
            search::run().await?;
            relay::run().await?;
            register::run().await?;
            sync::run().await?;
            leases::run().await
        }
        other => anyhow::bail!("unknown scenario {other:?}; scenarios: {SCENARIOS}"),
    }
}

/// How the bench logs: warnings only, plain text.
fn log_options() -> kassa_telemetry::Options {
    kassa_telemetry::Options {
        service_name: "kassa-bench",
        json: false,
        default_filter: "warn",
        otlp_traces_url: None,
    }
}

/// Central serving `state` on a free port, with a signed-in cashier; stop it with `stop`.
struct Served {
    base: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    async fn start(state: kassa_central::AppState) -> anyhow::Result<Self> {
        use kassa_central::store;
        use kassa_domain::{Role, Username};
        let user = store::users::insert(&state.db, &Username::parse("bench")?, "x", Role::Cashier)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let token = state
            .auth
            .start_session(&state.db, user.id, Role::Cashier, None)
            .await?
            .access_token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kassa_central::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            base,
            token,
            stop,
            server,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await?
    }
}

/// p50, p99 and mean of durations in milliseconds.
#[expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "statistics"
)]
fn percentiles(samples: &mut [std::time::Duration]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    (at(0.50), at(0.99), mean)
}

/// Latencies of one caller: p50 and p99 in milliseconds.
struct Latencies {
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `op` on each input in turn; the first `warmup` are not counted.
async fn latencies<F, Fut>(inputs: &[String], warmup: usize, mut op: F) -> anyhow::Result<Latencies>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut samples: Vec<std::time::Duration> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let started = std::time::Instant::now();
        op(input.clone()).await?;
        if i >= warmup {
            samples.push(started.elapsed());
        }
    }
    let (p50_ms, p99_ms, _) = percentiles(&mut samples);
    Ok(Latencies { p50_ms, p99_ms })
}
