//! Many instances, one database: started at the same moment on an empty PostgreSQL database,
//! migrations run once and every instance becomes ready.

use crate::harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_started_at_once_on_an_empty_database_all_become_ready() {
    let Some(url) = harness::postgres_database().await else {
        return;
    };
    let instances = harness::start_instances(3, &harness::base_env(&url)).await;
    // One signing key for all (made once, kept in the database): a token from one instance is
    // accepted by the others.
    harness::load_demo(&url);
    let client = harness::client();
    let tokens = harness::login(&client, &instances[0].url(), "cashier", "cashier-pass-1").await;
    let token = tokens["access_token"].as_str().unwrap();
    for instance in &instances {
        let response = client
            .get(format!("{}/v1/locations", instance.url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "instance {} refused", instance.port);
    }
    // Each instance's search index follows the change feed: the demo store loaded after they
    // started is found by every one of them, with the same answer, within the refresh lag.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut answers = Vec::new();
        for instance in &instances {
            let found: serde_json::Value = client
                .get(format!("{}/v1/search?q=coffee&page_size=5", instance.url()))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answers.push((found["total"].clone(), found["hits"][0]["sku"].clone()));
        }
        if answers[0].0.as_u64().is_some_and(|n| n > 0) && answers.iter().all(|a| *a == answers[0])
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "instances answer the same search differently: {answers:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Every migration was applied exactly once.
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let (rows, versions): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT version) FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows, versions);
    assert!(rows >= 13, "only {rows} migrations applied");
}

/// The migration lock is Kassa's own (`MIGRATION_LOCK_KEY`), not only sqlx's: while something
/// holds it, a starting instance applies nothing and is not ready; released, it migrates and
/// becomes ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_instance_waits_for_the_migration_lock_before_migrating() {
    use kassa_central::devtools::cluster::CentralProcess;
    use kassa_central::store::MIGRATION_LOCK_KEY;
    use sqlx::Connection;
    let Some(url) = harness::postgres_database().await else {
        return;
    };
    sqlx::any::install_default_drivers();
    let mut holder = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    let mut instance = CentralProcess::start(&harness::binary(), &harness::base_env(&url)).unwrap();
    assert!(
        instance
            .wait_ready(std::time::Duration::from_secs(3))
            .await
            .is_err(),
        "ready while another holds the migration lock"
    );
    let mut probe = sqlx::AnyConnection::connect(&url).await.unwrap();
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'",
    )
    .fetch_one(&mut probe)
    .await
    .unwrap();
    assert_eq!(tables, 0, "migrated without the migration lock");
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut holder)
        .await
        .unwrap();
    instance.wait_ready(harness::READY_TIMEOUT).await.unwrap();
    let (applied,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut probe)
        .await
        .unwrap();
    assert!(applied >= 13, "only {applied} migrations applied");
}
