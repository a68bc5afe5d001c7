//! What operators see: a day of trade (online orders, a replayed and a misused idempotency key,
//! an oversell, a card payment, a register's offline batch with a shortfall and its sync report,
//! a rate-limited login) shows in `/metrics` under Prometheus names; the Grafana dashboard and
//! the alert rules name only metrics Central exports.

use std::collections::BTreeSet;

use kassa_central::telemetry::metrics::EXPORTED;
use kassa_domain::api::{
    Order, REGISTER_CATALOG_AGE_HEADER, REGISTER_OLDEST_UNSYNCED_HEADER, REGISTER_QUEUE_HEADER,
};
use kassa_domain::Role;
use serde_json::json;
use uuid::Uuid;

use crate::checkout::{order, seed};
use crate::helpers::TestApp;
use crate::payments::{card, eventually, pay};
use crate::story_with;
use crate::sync::{offline_order, register_session};

story_with!(two_logins_per_minute: a_day_of_trade_shows_in_the_metrics);

/// Two logins per username per minute: a third try is refused (429).
fn two_logins_per_minute(config: &mut kassa_central::Config) {
    config.login_per_username_per_minute = 2;
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The metric names in a Prometheus text exposition (histograms by their base name).
fn names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default())
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
                .unwrap_or(n)
                .to_owned()
        })
        .collect()
}

async fn a_day_of_trade_shows_in_the_metrics(app: TestApp) {
    let admin = seed(&app, 5).await;
    let before = scrape(&app).await;
    let counter = |m: &str, name: &str, labels: &[(&str, &str)]| sample(m, name, labels);

    // Online: an order, its replay, the same key with another body, an oversell, a card payment.
    let buyer = app.user(Role::Customer).await;
    let one = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 1 }] });
    let first = order(&app, buyer.token(), "metrics-1", &one).await;
    assert_eq!(first.status(), 201);
    let placed: Order = first.json().await.unwrap();
    assert_eq!(
        order(&app, buyer.token(), "metrics-1", &one).await.status(),
        201
    );
    let two = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 2 }] });
    assert_eq!(
        order(&app, buyer.token(), "metrics-1", &two).await.status(),
        422
    );
    let many = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 99 }] });
    assert_eq!(
        order(&app, buyer.token(), "metrics-2", &many)
            .await
            .status(),
        409
    );
    let paid = pay(
        &app,
        buyer.token(),
        placed.id,
        "metrics-pay",
        &card("2.50", "pm_card_visa"),
    )
    .await;
    assert_eq!(paid.status(), 201, "{}", paid.text().await.unwrap());

    // A register's offline batch selling more than is left, with its sync report.
    let (till, register_id) = register_session(&app, &admin).await;
    let batch =
        json!({ "orders": [offline_order(Uuid::now_v7(), &[("SKU-1", 6, "2.50")], "15.00")] });
    let synced = app
        .client
        .post(app.url("/v1/sync/orders"))
        .bearer_auth(&till)
        .header(REGISTER_QUEUE_HEADER, "7")
        .header(REGISTER_OLDEST_UNSYNCED_HEADER, "95")
        .header(REGISTER_CATALOG_AGE_HEADER, "12")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(synced.status(), 200);

    // Logins over their limit.
    let limited = app.user(Role::Cashier).await;
    let login = json!({ "username": limited.username, "password": limited.password });
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url("/v1/auth/login"))
            .json(&login)
            .send()
            .await;
        statuses.push(response.unwrap().status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    // The relay and the search index catch up (their background tasks are `serve`'s).
    let relay = kassa_central::events::Relay::new(
        app.state.db.clone(),
        kassa_central::events::RelaySettings::default(),
        kassa_central::events::default_consumers(),
    );
    relay.drain(100).await.unwrap();
    relay.report_backlog().await.unwrap();
    kassa_central::search::index::refresh(&app.state.search, &app.state.db)
        .await
        .unwrap();

    // The card's webhook lands after the payment's answer.
    eventually("the card webhook is handled", || async {
        let m = scrape(&app).await;
        counter(
            &m,
            "http_requests_total",
            &[("route", "/v1/webhooks/payments")],
        ) > counter(
            &before,
            "http_requests_total",
            &[("route", "/v1/webhooks/payments")],
        )
    })
    .await;
    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)], by: f64| {
        let delta = counter(&after, name, labels) - counter(&before, name, labels);
        assert!(
            delta >= by,
            "{name}{labels:?} grew by {delta}, not {by}:\n{after}"
        );
    };
    grew(
        "http_requests_total",
        &[
            ("method", "POST"),
            ("route", "/v1/orders"),
            ("status", "201"),
        ],
        2.0,
    );
    grew(
        "http_request_duration_seconds_count",
        &[("route", "/v1/orders/{id}/payments")],
        1.0,
    );
    grew("kassa_idempotency_replays_total", &[], 1.0);
    grew(
        "kassa_idempotency_conflicts_total",
        &[("reason", "body_mismatch")],
        1.0,
    );
    grew("kassa_oversell_refusals_total", &[], 1.0);
    // CREATED twice (online, offline), RESERVED once (online), PAID twice (card, offline).
    for (to, times) in [("CREATED", 2.0), ("RESERVED", 1.0), ("PAID", 2.0)] {
        grew("kassa_order_transitions_total", &[("to", to)], times);
    }
    grew(
        "kassa_processor_request_duration_seconds_count",
        &[("outcome", "ok")],
        1.0,
    );
    let register = register_id.to_string();
    let till_labels = [("register", register.as_str())];
    grew("kassa_sync_batches_total", &till_labels, 1.0);
    grew(
        "kassa_sync_orders_total",
        &[("register", &register), ("outcome", "accepted")],
        1.0,
    );
    grew("kassa_stock_shortfalls_total", &[], 1.0);
    grew("kassa_stock_shortfall_units_total", &[], 2.0);
    grew(
        "kassa_rate_limited_requests_total",
        &[("limit", "login_per_username")],
        1.0,
    );
    grew("kassa_relay_delivered_events_total", &[], 1.0);
    assert_eq!(
        counter(&after, "kassa_register_queue_orders", &till_labels),
        7.0
    );
    assert_eq!(
        counter(
            &after,
            "kassa_register_oldest_unsynced_sale_age_seconds",
            &till_labels
        ),
        95.0
    );
    assert_eq!(
        counter(&after, "kassa_register_catalog_age_seconds", &till_labels),
        12.0
    );
    assert!(
        counter(
            &after,
            "kassa_register_last_sync_timestamp_seconds",
            &till_labels
        ) > 1.7e9
    );
    assert!(counter(&after, "kassa_db_pool_connections_max", &[]) >= 1.0);
    assert!(after.contains("kassa_db_pool_connections{state=\"in_use\"}"));
    assert!(counter(&after, "kassa_search_index_lag_seconds", &[]) < 60.0);
    assert!(after.contains("kassa_relay_backlog_events"));

    let exported: BTreeSet<&str> = EXPORTED.iter().copied().collect();
    let unknown: Vec<String> = names(&after)
        .into_iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "exported but not listed in EXPORTED: {unknown:?}"
    );
}

fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The metric names a PromQL expression reads: identifiers that start `kassa_`, `http_` or
/// `slo:`-free names Central could export (recording rules' own names contain `:`).
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if (word.starts_with("kassa_") || word.starts_with("http_")) && !word.contains(':') {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
                .unwrap_or(&word);
            found.insert(base.to_owned());
        }
        word.clear();
    }
    found
}

fn all_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => all_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| all_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_dashboard_is_json_and_names_only_metrics_central_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/kassa-central.json"))
            .expect("the dashboard is valid JSON");
    assert!(dashboard["title"].is_string() && dashboard["panels"].is_array());
    let mut exprs = Vec::new();
    all_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "RED and business panels: {exprs:?}");
    let named: BTreeSet<String> = exprs.iter().flat_map(|e| metrics_in(e)).collect();
    let exported: BTreeSet<String> = EXPORTED.iter().map(|s| (*s).to_owned()).collect();
    let unknown: Vec<&String> = named.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics Central does not export: {unknown:?}"
    );
    for needed in [
        "http_requests_total",
        "http_request_duration_seconds",
        "kassa_order_transitions_total",
    ] {
        assert!(named.contains(needed), "the dashboard shows {needed}");
    }
}

#[test]
fn the_alert_rules_read_only_metrics_central_exports() {
    let rules = repo_file("deploy/prometheus/kassa-slo-rules.yml");
    let named = metrics_in(&rules);
    assert!(named.contains("http_requests_total"), "{named:?}");
    let exported: BTreeSet<String> = EXPORTED.iter().map(|s| (*s).to_owned()).collect();
    let unknown: Vec<&String> = named.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the rules read metrics Central does not export: {unknown:?}"
    );
}

/// `promtool check rules` and `promtool test rules` over `deploy/prometheus/` (the alerts fire
/// on bad series and stay quiet on good ones). Skipped without promtool unless
/// `KASSA_REQUIRE_PROMTOOL` is set (CI sets it; `./x test` installs Debian's `prometheus`).
#[test]
fn the_slo_alerts_pass_their_promtool_tests() {
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        assert!(
            std::env::var_os("KASSA_REQUIRE_PROMTOOL").is_none(),
            "KASSA_REQUIRE_PROMTOOL is set but promtool is missing (apt-get install prometheus)"
        );
        eprintln!("promtool is not installed: the alert rule tests are skipped");
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus");
    for args in [
        &["check", "rules", "kassa-slo-rules.yml"][..],
        &["test", "rules", "kassa-slo-rules.test.yml"][..],
    ] {
        let out = std::process::Command::new(promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
