//! A read replica (`KASSA_DATABASE_READ_URL`) a second behind the primary: lists read from it,
//! a client that wrote reads its write through another instance (carrying
//! `Kassa-Write-Position` back as `Kassa-Read-After`), and with the replica stopped reads still
//! answer while `/ready` reports the degradation.

use std::time::{Duration, Instant};

use kassa_central::devtools::{Durability, PgCluster};

use crate::harness::{self, client, env_with, gauge, login};

/// DEMO-0001's on-hand count at STORE-1 as instance `base` reads it.
async fn on_hand(c: &reqwest::Client, base: &str, token: &str, read_after: Option<&str>) -> i64 {
    let mut request = c
        .get(format!("{base}/v1/stock?location=STORE-1&limit=1"))
        .bearer_auth(token);
    if let Some(position) = read_after {
        request = request.header("kassa-read-after", position);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let page: serde_json::Value = response.json().await.unwrap();
    assert_eq!(page["items"][0]["sku"], "DEMO-0001");
    page["items"][0]["on_hand"].as_i64().unwrap()
}

/// Receives 5 units of DEMO-0001 at `base`; the write position the answer carries.
async fn receive(c: &reqwest::Client, base: &str, token: &str) -> String {
    let response = c
        .post(format!("{base}/v1/stock/adjustments"))
        .bearer_auth(token)
        .json(&serde_json::json!({"sku": "DEMO-0001", "location": "STORE-1", "delta": 5, "reason": "receiving"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response
        .headers()
        .get("kassa-write-position")
        .expect("a write answered without its position")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The sum of the counter `name` on `base`'s `/metrics`.
async fn counter(c: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_read_through_another_instance_while_the_replica_lags_and_reads_survive_its_loss(
) {
    let Some(primary) = PgCluster::start(Durability::Fast) else {
        return;
    };
    let url = primary.create_database().await.unwrap();
    harness::load_demo(&url);
    let replica = primary.start_replica(1000).unwrap();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let read_url = replica.url(&database);
    // A waits long enough for the replica to pass a write; B reads the primary instead.
    let patient = env_with(
        &url,
        &[
            ("KASSA_DATABASE_READ_URL", read_url.clone()),
            ("KASSA_REPLICA_WAIT_MS", "5000".into()),
        ],
    );
    let hasty = env_with(
        &url,
        &[
            ("KASSA_DATABASE_READ_URL", read_url),
            ("KASSA_REPLICA_WAIT_MS", "100".into()),
        ],
    );
    let mut writer = harness::start_instances(1, &hasty).await;
    let mut patient = harness::start_instances(1, &patient).await;
    let (w, p) = (writer.remove(0), patient.remove(0));
    let c = client();
    let token = login(&c, &w.url(), "manager", "manager-pass-1").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The replica has caught up with the demo store.
    let deadline = Instant::now() + Duration::from_secs(20);
    let before = loop {
        let primary_count = on_hand(&c, &w.url(), &token, Some("FFFFFFFF/FFFFFFFF")).await;
        if on_hand(&c, &p.url(), &token, None).await == primary_count {
            break primary_count;
        }
        assert!(Instant::now() < deadline, "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A write on one instance; a plain read on the other comes from the lagging replica.
    let position = receive(&c, &w.url(), &token).await;
    assert_eq!(
        on_hand(&c, &p.url(), &token, None).await,
        before,
        "a read without a position did not come from the replica (a second behind)"
    );
    // Carrying the position: the patient instance waits for the replica to replay it.
    let started = Instant::now();
    assert_eq!(
        on_hand(&c, &p.url(), &token, Some(&position)).await,
        before + 5
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "it did not wait for the replica"
    );
    assert_eq!(
        counter(&c, &p.url(), "kassa_read_replica_behind_reads_total").await,
        0.0
    );

    // The hasty instance reads the primary rather than wait a second.
    let position = receive(&c, &p.url(), &token).await;
    assert_eq!(
        on_hand(&c, &w.url(), &token, Some(&position)).await,
        before + 10
    );
    assert!(counter(&c, &w.url(), "kassa_read_replica_behind_reads_total").await >= 1.0);

    // The replica stops: reads answer from the primary, /ready says so and stays 200.
    replica.stop().unwrap();
    assert_eq!(on_hand(&c, &p.url(), &token, None).await, before + 10);
    let ready = c.get(format!("{}/ready", p.url())).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().contains("degraded"));
    assert_eq!(
        gauge(&c, &p.url(), "kassa_read_replica_up").await,
        Some(0.0)
    );
}
