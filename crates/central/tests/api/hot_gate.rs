//! The hot-SKU gate (`stock::hot_gate`) with a real `redis-server` per story, on SQLite and
//! PostgreSQL: a flash sale sells exactly the stock whatever the counters say, sold-out answers
//! come from Redis without the database, a retry takes once, counters that lie are corrected,
//! and Redis killed and restarted empty mid-sale changes nothing but a few 503s.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_central::config::Secret;
use kassa_central::devtools::cluster::RedisServer;
use kassa_central::stock::hot_gate::{self, Outcome};
use kassa_domain::Role;
use serde_json::Value;

use crate::checkout::{count, one_unit, order, seed, stock};
use crate::helpers::{error_body, Db, TestApp};

/// Runs `$name(app, redis)` on each backend with Central pointed at a fresh `redis-server`
/// (skipped when it is not installed, unless `KASSA_REQUIRE_REDIS` is set).
macro_rules! hot_story {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                super::run(crate::helpers::Db::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                super::run(crate::helpers::Db::Postgres, super::$name).await
            }
        }
    )*};
}

hot_story!(
    concurrent_buyers_buy_exactly_the_stock_and_the_rest_hear_sold_out_from_redis_alone,
    a_retry_with_the_same_key_takes_from_the_counter_once,
    a_counter_set_too_high_by_hand_still_sells_exactly_the_stock_and_is_corrected,
    a_counter_set_too_low_and_units_given_back_are_corrected_by_the_reconciler,
    redis_killed_and_restarted_empty_mid_sale_still_sells_exactly_the_stock,
);

async fn run<F, Fut>(db: Db, story: F)
where
    F: FnOnce(TestApp, RedisServer) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(redis) = RedisServer::start() else {
        eprintln!("skipped: redis-server is not installed (KASSA_REQUIRE_REDIS=1 to require it)");
        return;
    };
    let url = redis.url();
    let Some(app) = TestApp::spawn_with(db, move |c| {
        c.redis_url = Some(Secret::new(url));
        // Sessions and the read-only switch read from the database at most once a minute:
        // the checkouts counted are the orders' own.
        c.session_cache_ttl = Duration::from_secs(60);
        c.read_only_refresh = Duration::from_secs(60);
    })
    .await
    else {
        return;
    };
    story(app, redis).await;
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn counter_key(app: &TestApp, sku: &str) -> String {
    let location = kassa_central::store::locations::find_by_code(&app.state.db, "STORE-1")
        .await
        .unwrap()
        .unwrap();
    hot_gate::counter_key(&location.id.to_string(), sku)
}

/// The units the counter of `sku` at STORE-1 holds; `None` when it has none.
async fn counter(app: &TestApp, redis: &RedisServer, sku: &str) -> Option<i64> {
    let key = counter_key(app, sku).await;
    redis::cmd("HGET")
        .arg(&key)
        .arg("units")
        .query_async(&mut redis_conn(redis).await)
        .await
        .unwrap()
}

async fn set_counter(app: &TestApp, redis: &RedisServer, sku: &str, units: i64) {
    let key = counter_key(app, sku).await;
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg("units")
        .arg(units)
        .query_async(&mut redis_conn(redis).await)
        .await
        .unwrap();
}

async fn customers(app: &TestApp, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(app.user(Role::Customer).await.tokens.access_token);
    }
    tokens
}

/// `buyers` orders of one unit of SKU-1 (keys `{prefix}-{i}`), at most `parallel` at a time.
/// Answers each order's status and body.
async fn sale(
    app: &Arc<TestApp>,
    tokens: &[String],
    prefix: &str,
    buyers: usize,
    parallel: usize,
) -> Vec<(u16, Value)> {
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(buyers);
    for i in 0..buyers {
        let (app, token) = (app.clone(), tokens[i % tokens.len()].clone());
        let permits = permits.clone();
        let key = format!("{prefix}-{i}");
        tasks.push(tokio::spawn(async move {
            let _turn = permits.acquire_owned().await.unwrap();
            let response = order(&app, &token, &key, &one_unit("SKU-1")).await;
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }));
    }
    let mut answers = Vec::with_capacity(buyers);
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Asserts every answer is 201, 409 `insufficient_stock` or (when `unavailable_ok`) 503, and
/// answers how many were 201.
fn sold(answers: &[(u16, Value)], unavailable_ok: bool) -> usize {
    let mut created = 0;
    for (status, body) in answers {
        match status {
            201 => created += 1,
            409 => assert_eq!(body["error"]["code"], "insufficient_stock", "{body}"),
            503 if unavailable_ok => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    created
}

async fn assert_sold_out(app: &TestApp, token: &str, units: i64) {
    let level = stock(app, token, "SKU-1").await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (units, units, 0),
        "exactly the stock is reserved"
    );
    assert_eq!(
        count(app, "SELECT COUNT(*) FROM orders WHERE status = 'RESERVED'").await,
        units
    );
}

async fn concurrent_buyers_buy_exactly_the_stock_and_the_rest_hear_sold_out_from_redis_alone(
    app: TestApp,
    redis: RedisServer,
) {
    let manager = seed(&app, 30).await;
    let app = Arc::new(app);
    let tokens = customers(&app, 10).await;
    let answers = sale(&app, &tokens, "buy", 300, 64).await;
    assert_eq!(sold(&answers, false), 30, "exactly the 30 units are sold");
    assert_sold_out(&app, &manager, 30).await;
    let gate = &app.state.hot_gate;
    assert!(gate.count(Outcome::Taken) >= 30);
    assert!(
        gate.count(Outcome::SoldOut) > 0,
        "sold-out answers came from Redis"
    );
    assert_eq!(counter(&app, &redis, "SKU-1").await, Some(0));

    // Sold out: the answers come from Redis, and the database hands out no connection.
    for (i, token) in tokens.iter().enumerate() {
        let warm = order(&app, token, &format!("warm-{i}"), &one_unit("SKU-1")).await;
        error_body(warm, 409, "insufficient_stock").await;
    }
    let (checkouts, sold_out) = (app.state.db.checkouts(), gate.count(Outcome::SoldOut));
    for i in 0..50 {
        let token = &tokens[i % tokens.len()];
        let response = order(&app, token, &format!("late-{i}"), &one_unit("SKU-1")).await;
        let body = error_body(response, 409, "insufficient_stock").await;
        assert_eq!(body["error"]["details"]["lines"][0]["available"], 0);
    }
    assert_eq!(gate.count(Outcome::SoldOut) - sold_out, 50);
    assert_eq!(
        app.state.db.checkouts() - checkouts,
        0,
        "a sold-out answer from Redis touches no database connection"
    );
}

async fn a_retry_with_the_same_key_takes_from_the_counter_once(app: TestApp, redis: RedisServer) {
    let manager = seed(&app, 5).await;
    let app = Arc::new(app);
    let token = app.user(Role::Customer).await.tokens.access_token;
    let first = order(&app, &token, "once", &one_unit("SKU-1")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(counter(&app, &redis, "SKU-1").await, Some(4));

    // A storm of retries, sequential and concurrent: the same order, the counter untouched.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, token) = (app.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let response = order(&app, &token, "once", &one_unit("SKU-1")).await;
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["id"], first["id"]);
    }
    assert_eq!(counter(&app, &redis, "SKU-1").await, Some(4));
    assert!(app.state.hot_gate.count(Outcome::Retried) >= 20);
    assert_eq!(stock(&app, &manager, "SKU-1").await.available, 4);

    // A failed order gives its units back: one that reuses an existing order's id fails in the
    // database after the gate took its unit.
    let mut body = one_unit("SKU-1");
    body["id"] = first["id"].clone();
    let refused = order(&app, &token, "same-id", &body).await;
    error_body(refused, 409, "order_exists").await;
    assert_eq!(counter(&app, &redis, "SKU-1").await, Some(4));
    assert!(app.state.hot_gate.count(Outcome::GivenBack) >= 1);
    let second = order(&app, &token, "twice", &one_unit("SKU-1")).await;
    assert_eq!(second.status(), 201);
    assert_eq!(counter(&app, &redis, "SKU-1").await, Some(3));
    assert_eq!(stock(&app, &manager, "SKU-1").await.available, 3);
}

async fn a_counter_set_too_high_by_hand_still_sells_exactly_the_stock_and_is_corrected(
    app: TestApp,
    redis: RedisServer,
) {
    let manager = seed(&app, 10).await;
    let app = Arc::new(app);
    let tokens = customers(&app, 5).await;
    // The first order loads the counter; then someone sets it far too high.
    let first = order(&app, &tokens[0], "first", &one_unit("SKU-1")).await;
    assert_eq!(first.status(), 201);
    set_counter(&app, &redis, "SKU-1", 1000).await;
    let answers = sale(&app, &tokens, "buy", 100, 32).await;
    assert_eq!(sold(&answers, false), 9, "the database sells the 9 left");
    assert_sold_out(&app, &manager, 10).await;
    assert!(app.state.hot_gate.count(Outcome::Corrected) > 0);
    // Each refusal set the counter to the database's figure; one read while the last sale was
    // still uncommitted may leave it one high, which the next refusal corrects.
    for i in 0..3 {
        if counter(&app, &redis, "SKU-1").await == Some(0) {
            break;
        }
        let late = order(&app, &tokens[1], &format!("late-{i}"), &one_unit("SKU-1")).await;
        error_body(late, 409, "insufficient_stock").await;
    }
    assert_eq!(
        counter(&app, &redis, "SKU-1").await,
        Some(0),
        "the database's refusals set the counter to its figure"
    );
    let sold_out = app.state.hot_gate.count(Outcome::SoldOut);
    let late = order(&app, &tokens[1], "late", &one_unit("SKU-1")).await;
    error_body(late, 409, "insufficient_stock").await;
    assert_eq!(app.state.hot_gate.count(Outcome::SoldOut), sold_out + 1);
}

async fn a_counter_set_too_low_and_units_given_back_are_corrected_by_the_reconciler(
    app: TestApp,
    redis: RedisServer,
) {
    let manager = seed(&app, 5).await;
    let token = app.user(Role::Customer).await.tokens.access_token;
    let first = order(&app, &token, "first", &one_unit("SKU-1")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    set_counter(&app, &redis, "SKU-1", 0).await;
    // The counter says sold out; it is believed (the database has 4 left).
    let refused = order(&app, &token, "refused", &one_unit("SKU-1")).await;
    error_body(refused, 409, "insufficient_stock").await;
    assert_eq!(stock(&app, &manager, "SKU-1").await.available, 4);

    let reconciler = hot_gate::spawn_reconciler(app.state.clone(), Duration::from_millis(100));
    wait_for_counter(&app, &redis, 4).await;
    let second = order(&app, &token, "second", &one_unit("SKU-1")).await;
    assert_eq!(second.status(), 201, "the reconciled counter sells again");
    // (A pass that read the database just before this sale committed may set 4 once more; the
    // next pass sees the row changed.)
    wait_for_counter(&app, &redis, 3).await;

    // A cancellation gives units back in the database; the reconciler follows.
    let id = first["id"].as_str().unwrap();
    let cancelled = app
        .post(&format!("/v1/orders/{id}/cancel"), &token, &Value::Null)
        .await;
    assert_eq!(cancelled.status(), 200);
    wait_for_counter(&app, &redis, 4).await;
    assert!(app.state.hot_gate.count(Outcome::Reconciled) > 0);
    reconciler.abort();
}

async fn wait_for_counter(app: &TestApp, redis: &RedisServer, units: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = counter(app, redis, "SKU-1").await;
        if now == Some(units) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the counter is {now:?}, not {units}, after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn redis_killed_and_restarted_empty_mid_sale_still_sells_exactly_the_stock(
    app: TestApp,
    redis: RedisServer,
) {
    let manager = seed(&app, 60).await;
    let app = Arc::new(app);
    let tokens = customers(&app, 10).await;
    let done = Arc::new(AtomicUsize::new(0));
    // Kill Redis after the first 20 units are sold, start it again, empty, a little later.
    let outage = {
        let (app, done) = (app.clone(), done.clone());
        tokio::spawn(async move {
            let mut redis = redis;
            let created = || count_reserved(&app);
            while created().await < 20 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::task::block_in_place(|| redis.kill().unwrap());
            let killed_at = done.load(Ordering::Relaxed);
            while done.load(Ordering::Relaxed) < killed_at + 100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::task::block_in_place(|| redis.restart().unwrap());
            redis
        })
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..600 {
        let (app, token, done) = (app.clone(), tokens[i % tokens.len()].clone(), done.clone());
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let _turn = permits.acquire_owned().await.unwrap();
            let response = order(&app, &token, &format!("buy-{i}"), &one_unit("SKU-1")).await;
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            done.fetch_add(1, Ordering::Relaxed);
            (status, body)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let redis = outage.await.unwrap();
    assert_eq!(sold(&answers, true), 60, "exactly the 60 units are sold");
    assert_sold_out(&app, &manager, 60).await;
    let gate = &app.state.hot_gate;
    assert!(
        gate.count(Outcome::DatabaseOnly) > 0,
        "orders went to the database alone while Redis was down"
    );

    // Redis is back, empty: the counter is loaded from the database and answers sold out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    loop {
        i += 1;
        let late = order(&app, &tokens[0], &format!("late-{i}"), &one_unit("SKU-1")).await;
        error_body(late, 409, "insufficient_stock").await;
        if counter(&app, &redis, "SKU-1").await == Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "the counter was not reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sold_out = gate.count(Outcome::SoldOut);
    let late = order(&app, &tokens[1], "after", &one_unit("SKU-1")).await;
    error_body(late, 409, "insufficient_stock").await;
    assert_eq!(gate.count(Outcome::SoldOut), sold_out + 1);
}

async fn count_reserved(app: &TestApp) -> i64 {
    count(app, "SELECT COUNT(*) FROM orders WHERE status = 'RESERVED'").await
}

mod requests_cut_mid_order_give_their_units_back {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn on_sqlite() {
        super::run_cut(crate::helpers::Db::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn on_postgres() {
        super::run_cut(crate::helpers::Db::Postgres).await
    }
}

/// Orders cut by Central's own request timeout after the gate took their unit (while the test
/// holds the stock row locked, so that every one waits at the database) give it back: the
/// counter ends where the database is.
async fn run_cut(db: Db) {
    let Some(redis) = RedisServer::start() else {
        eprintln!("skipped: redis-server is not installed (KASSA_REQUIRE_REDIS=1 to require it)");
        return;
    };
    let url = redis.url();
    let Some(app) = TestApp::spawn_with(db, move |c| {
        c.redis_url = Some(Secret::new(url));
        c.request_timeout = Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let state = &app.state;
    let location = kassa_central::store::locations::insert(&state.db, "STORE-1", "One")
        .await
        .unwrap()
        .unwrap();
    let product = serde_json::from_value(crate::catalog::product_body(
        "SKU-1",
        &crate::catalog::ean(1),
        "2.50",
    ))
    .unwrap();
    kassa_central::store::catalog::insert(&state.db, &product)
        .await
        .unwrap();
    let location_id = location.id.to_string();
    let mut tx = state.db.begin_write().await.unwrap();
    let receive = kassa_central::store::stock::Movement {
        sku: "SKU-1",
        location_id: &location_id,
        delta: 1000,
        reason: kassa_domain::api::StockReason::Receiving,
        reference: None,
        note: None,
        created_by: None,
    };
    kassa_central::store::stock::move_on_hand(&mut tx, &receive)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let user = kassa_central::store::users::insert(
        &state.db,
        &"buyer".parse().unwrap(),
        "x",
        Role::Customer,
    )
    .await
    .unwrap();
    let token = state
        .auth
        .start_session(&state.db, user.id, Role::Customer, None)
        .await
        .unwrap()
        .access_token;
    // The counter as loading would set it (a load cut by the timeout might never land).
    let key = hot_gate::counter_key(&location_id, "SKU-1");
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg("units")
        .arg(1000)
        .arg("gen")
        .arg(1)
        .query_async(&mut redis_conn(&redis).await)
        .await
        .unwrap();
    let mut lock = state.db.begin_write().await.unwrap();
    sqlx::query("UPDATE stock SET updated_at = updated_at WHERE sku = 'SKU-1'")
        .execute(&mut *lock)
        .await
        .unwrap();
    let app = Arc::new(app);
    let answers = sale(&app, &[token], "cut", 20, 20).await;
    lock.rollback().await.unwrap();
    let cut = answers.iter().filter(|(status, _)| *status == 503).count();
    assert_eq!(cut, 20, "every order waited past the timeout: {answers:?}");
    // The background give-backs land.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.state.hot_gate.count(Outcome::GivenBack) < app.state.hot_gate.count(Outcome::Taken)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let available = kassa_central::store::stock::level(app.state.db.pool(), "SKU-1", &location_id)
        .await
        .unwrap()
        .unwrap()
        .available();
    let units = counter(&app, &redis, "SKU-1").await;
    // (A request may be cut before it reaches the gate: it took nothing.)
    let took = app.state.hot_gate.count(Outcome::Taken);
    assert!(took > 0, "requests reached the gate before they were cut");
    assert_eq!(
        app.state.hot_gate.count(Outcome::GivenBack),
        took,
        "every request cut after the gate gave back ({cut} cut, counter {units:?}, database \
         {available})"
    );
    assert_eq!(available, 1000);
    assert_eq!(
        units,
        Some(available),
        "the counter ends where the database is"
    );
}
