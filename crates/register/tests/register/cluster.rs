//! The register against Central scaled out (issue 12): three `kassa-central` processes on one
//! PostgreSQL behind HAProxy running `deploy/haproxy.cfg`, the way `./x cluster` starts them.
//! The till sells cash and card through the load balancer while one instance is `kill -9`ed,
//! and wrong PINs tried at different instances lock PIN sign-in on all of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kassa_central::devtools::cluster::{haproxy_config, CentralProcess, HaProxy};
use kassa_central::devtools::PgCluster;
use kassa_domain::receipt::SaleMode;
use kassa_register::secrets::MemoryStore;
use kassa_register::Register;
use serde_json::Value;

use crate::helpers::{bounded, eur, open_register_with, open_shift, sync_until_drained};

const MANAGER_PASSWORD: &str = "manager-pass-1";
const CASHIER_PASSWORD: &str = "cashier-pass-1";
/// The demo cashier's PIN (`kassa_central::demo::DEMO_PINS`).
const CASHIER_PIN: &str = "1357";

/// `kassa-central`, built beside this test binary by `cargo test --workspace`.
fn central_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = dir.join(format!("kassa-central{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it first (`cargo build -p kassa-central`; `./x test` does)",
        binary.display()
    );
    binary
}

/// Three instances on a fresh PostgreSQL database with the demo store, the processor simulator
/// behind them, HAProxy in front. `None` when PostgreSQL or haproxy is missing (each panics
/// instead under its `KASSA_REQUIRE_*`).
struct Cluster {
    instances: Vec<CentralProcess>,
    lb: HaProxy,
    sim: kassa_processor_sim::SimHandle,
}

impl Cluster {
    async fn start() -> Option<Cluster> {
        let database_url = PgCluster::shared()?.create_database().await.unwrap();
        let binary = central_binary();
        let demo = std::process::Command::new(&binary)
            .arg("demo")
            .env("KASSA_DATABASE_URL", &database_url)
            .output()
            .unwrap();
        assert!(
            demo.status.success(),
            "kassa-central demo: {}",
            String::from_utf8_lossy(&demo.stderr)
        );
        let sim = kassa_processor_sim::spawn(kassa_processor_sim::SimConfig::default())
            .await
            .unwrap();
        let env = [
            ("KASSA_DATABASE_URL", database_url),
            ("KASSA_PROCESSOR_URL", sim.base_url.clone()),
            ("KASSA_WEBHOOK_SECRET", "whsec_demo".to_owned()),
            ("KASSA_DB_CONNECTIONS_MAX", "8".to_owned()),
            ("KASSA_USER_REQUESTS_PER_SECOND", "100000".to_owned()),
            ("KASSA_USER_REQUESTS_BURST", "100000".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        let mut instances: Vec<CentralProcess> = (0..3)
            .map(|_| CentralProcess::start(&binary, &env).unwrap())
            .collect();
        for instance in &mut instances {
            instance.wait_ready(Duration::from_secs(60)).await.unwrap();
        }
        let deployed = include_str!("../../../../deploy/haproxy.cfg");
        let backends: Vec<String> = instances
            .iter()
            .map(|i| i.url().trim_start_matches("http://").to_owned())
            .collect();
        let lb = HaProxy::start(|port| haproxy_config(deployed, port, &backends))?.unwrap();
        sim.set_webhook_url(Some(format!("{}/v1/webhooks/payments", lb.url())));
        Some(Cluster { instances, lb, sim })
    }
}

/// A register at STORE-1 paired through `central` as the demo manager, the cashier signed in
/// with the password, paying cards with `pm_card_visa`.
async fn paired(dir: &tempfile::TempDir, central: &str, code: &str) -> Register {
    let register = open_register_with(dir, central, Arc::new(MemoryStore::default()), |c| {
        c.card_payment_method = "pm_card_visa".into();
    })
    .await;
    register
        .pair("manager", MANAGER_PASSWORD, "STORE-1", code)
        .await
        .unwrap();
    register.sign_in("cashier", CASHIER_PASSWORD).await.unwrap();
    register
}

async fn manager_token(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"username": "manager", "password": MANAGER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_till_sells_cash_and_card_through_haproxy_and_loses_nothing_when_an_instance_dies() {
    bounded(async {
        let Some(mut cluster) = Cluster::start().await else {
            return;
        };
        let base = cluster.lb.url();
        let http = reqwest::Client::new();
        let token = manager_token(&http, &base).await;
        let (status, products) =
            get_json(&http, &format!("{base}/v1/products?limit=4"), &token).await;
        assert_eq!(status, 200, "{products}");
        let barcodes: Vec<String> = products["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["barcodes"][0].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(barcodes.len(), 4, "{products}");

        let dir = tempfile::tempdir().unwrap();
        let register = paired(&dir, &base, "R1").await;
        open_shift(&register).await;
        sync_until_drained(&register).await;

        let mut receipts = Vec::new();
        for n in 0..8 {
            if n == 4 {
                // One instance dies mid-day: HAProxy's health checks and its connection-failure
                // redispatch move the till to the others.
                cluster.instances[0].kill().unwrap();
            }
            register.scan(&barcodes[n % barcodes.len()]).await.unwrap();
            let receipt = if n % 2 == 0 {
                register.pay_card().await.unwrap()
            } else {
                register.pay_cash(eur("500.00")).await.unwrap()
            };
            // The balancer never left the till without a Central: every sale went online.
            assert_eq!(receipt.mode, SaleMode::Online, "sale {n}");
            receipts.push(receipt);
        }
        sync_until_drained(&register).await;

        for receipt in &receipts {
            let (status, order) = get_json(
                &http,
                &format!("{base}/v1/orders/{}", receipt.order_id),
                &token,
            )
            .await;
            assert_eq!(status, 200, "order {} at Central", receipt.receipt_no);
            assert!(
                matches!(order["status"].as_str(), Some("PAID" | "FULFILLED")),
                "order {} is {}",
                receipt.receipt_no,
                order["status"]
            );
            assert_eq!(order["paid"], order["totals"]["total"], "{order}");
        }
        // Every card sale charged exactly once, whichever instance took it.
        for receipt in receipts.iter().step_by(2) {
            let intents = cluster.sim.intents_of_order(&receipt.order_id.to_string());
            let captured: i64 = intents.iter().map(|i| i.received_minor).sum();
            assert_eq!(
                captured,
                receipt.totals.total.to_minor(),
                "card sale {} captured {captured} over {} intents",
                receipt.receipt_no,
                intents.len()
            );
        }
        // The register's sales appear once each in Central's order list (all pages).
        let mut listed: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..50 {
            let cursor = after
                .as_deref()
                .map(|a| format!("&after={a}"))
                .unwrap_or_default();
            let (status, page) = get_json(
                &http,
                &format!("{base}/v1/orders?limit=100{cursor}"),
                &token,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            listed.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|o| o["id"].as_str().map(str::to_owned)),
            );
            after = page["next_cursor"].as_str().map(str::to_owned);
            if after.is_none() {
                break;
            }
        }
        for receipt in &receipts {
            let id = receipt.order_id.to_string();
            let seen = listed.iter().filter(|listed| **listed == id).count();
            assert_eq!(seen, 1, "order {id} listed {seen} times");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_pins_tried_at_different_instances_lock_pin_sign_in_on_every_instance() {
    bounded(async {
        let Some(cluster) = Cluster::start().await else {
            return;
        };
        // One register per instance, so each PIN below is checked by a different process.
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut registers = Vec::new();
        for (n, instance) in cluster.instances.iter().enumerate() {
            registers.push(paired(&dirs[n], &instance.url(), &format!("R{}", n + 1)).await);
        }
        // The right PIN works anywhere before the lock.
        registers[2]
            .sign_in_pin("cashier", CASHIER_PIN)
            .await
            .unwrap();

        // Five wrong PINs in a row, spread over the three instances.
        for attempt in 0..5 {
            let refusal = registers[attempt % 3]
                .sign_in_pin("cashier", "0000")
                .await
                .unwrap_err();
            assert!(
                matches!(&refusal, kassa_register::Error::Api { status: 401, .. }),
                "wrong PIN {attempt}: {refusal:?}"
            );
        }
        // Locked on every instance, also for the right PIN; the password still signs in.
        for register in &registers {
            match register.sign_in_pin("cashier", CASHIER_PIN).await {
                Err(kassa_register::Error::Api {
                    status: 423,
                    detail,
                }) => {
                    assert_eq!(detail.code, "pin_locked");
                }
                other => panic!("expected 423 pin_locked, got {other:?}"),
            }
            register.sign_in("cashier", CASHIER_PASSWORD).await.unwrap();
        }
    })
    .await;
}
