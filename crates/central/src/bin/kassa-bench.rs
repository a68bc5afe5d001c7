//! `kassa-bench <scenario>`: benchmarks that print figures, the raw baseline and their ratio.
//! Figures, not assertions; `docs/benchmarks.md` records them.

#[path = "kassa-bench/checkout.rs"]
mod checkout;
#[path = "kassa-bench/search.rs"]
mod search;

use anyhow::Context;

const SCENARIOS: &str = "checkout|search|all";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scenario = std::env::args()
        .nth(1)
        .with_context(|| format!("usage: kassa-bench <{SCENARIOS}>"))?;
    match scenario.as_str() {
        "checkout" => checkout::run().await,
        "search" => search::run().await,
        "all" => {
            checkout::run().await?;
            search::run().await
        }
        other => anyhow::bail!("unknown scenario {other:?}; scenarios: {SCENARIOS}"),
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
