//! Guest carts in Redis (`carts::in_redis`) with a real `redis-server` per story, on SQLite and
//! PostgreSQL: a guest cart is a Redis key with a time to live (and no database row), every
//! write refreshes it, expiry answers 410 then 404, concurrent writes never mix, a merge moves
//! the lines into the user's database cart once (a second merge is a 404 even when the key
//! outlived the first), and with Redis killed new guest carts go to the database while carts
//! kept in Redis answer 503 `cart_unavailable` with `Retry-After`. The cart stories of
//! `carts.rs` run again with Redis, their guest carts all in Redis.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_central::carts::in_redis;
use kassa_central::config::Secret;
use kassa_central::devtools::cluster::RedisServer;
use kassa_central::Config;
use kassa_domain::api::{Cart, CartCreated, CartMerged};
use kassa_domain::Role;
use serde_json::{json, Value};

use crate::carts::{
    self, guest, lines, new_cart, new_guest_cart, put_lines, qtys, send, set_stock, shop, user,
    Key, NOBODY,
};
use crate::helpers::{error_body, Db, TestApp};
use crate::story;

/// Runs `$name(app, redis)` on each backend with Central pointed at a fresh `redis-server`
/// (skipped when it is not installed, unless `KASSA_REQUIRE_REDIS` is set), its config changed
/// by `$tweak`.
macro_rules! redis_story {
    ($tweak:ident: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                super::run(crate::helpers::Db::Sqlite, super::$tweak, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                super::run(crate::helpers::Db::Postgres, super::$tweak, super::$name).await
            }
        }
    )*};
}

/// The stories of `carts.rs`, run with Redis: afterwards no guest cart is in the database.
macro_rules! cart_story_with_redis {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                super::run(crate::helpers::Db::Sqlite, super::as_configured, super::replay!($name)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                super::run(crate::helpers::Db::Postgres, super::as_configured, super::replay!($name)).await
            }
        }
    )*};
}

macro_rules! replay {
    ($name:ident) => {
        |app: crate::helpers::TestApp, redis| async move {
            // Kept for the story: dropping it stops redis-server.
            let _redis = redis;
            crate::carts::$name(&app).await;
            let shared = &app.state.shared;
            if shared.recoveries() > 0 || !shared.is_up() {
                // A slow Redis (a loaded machine) opened the circuit: guest carts went to the
                // database meanwhile, as they should.
                eprintln!("Redis was unreachable during the story: not counting carts");
                return;
            }
            assert_eq!(
                super::count(
                    &app,
                    "SELECT COUNT(*) FROM carts WHERE token_hash IS NOT NULL"
                )
                .await,
                0,
                "every guest cart was kept in Redis"
            );
        }
    };
}
use replay;

redis_story!(as_configured:
    a_guest_cart_is_a_redis_key_with_a_ttl_refreshed_by_every_write,
    concurrent_puts_to_one_guest_cart_never_mix,
    a_merge_moves_the_lines_once_even_when_the_key_outlives_it,
    redis_killed_new_guest_carts_go_to_the_database_and_redis_carts_answer_503,
);

redis_story!(a_guest_ttl_of_a_second:
    an_expired_guest_cart_in_redis_answers_410_until_redis_drops_it_then_404,
);

cart_story_with_redis!(
    a_guest_creates_reads_and_updates_a_cart_with_its_token,
    a_cart_opens_only_for_its_token_or_its_owner,
    a_line_keeps_the_price_it_was_added_at,
    bad_cart_input_gets_a_clear_4xx_and_writes_nothing,
    merging_adds_quantities_capped_by_stock_and_deletes_the_guest_cart,
    merging_into_a_user_without_a_cart_makes_one,
);

story!(without_redis_a_guest_cart_is_a_database_row);

fn as_configured(_: &mut Config) {}

fn a_guest_ttl_of_a_second(c: &mut Config) {
    c.guest_cart_ttl = Duration::from_secs(1);
}

async fn run<F, Fut>(db: Db, tweak: fn(&mut Config), story: F)
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
        tweak(c);
    })
    .await
    else {
        return;
    };
    story(app, redis).await;
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

async fn db_rows(app: &TestApp, id: uuid::Uuid) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM carts WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
}

async fn redis_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The key's time to live in ms (-2: no such key).
async fn pttl(redis: &RedisServer, id: uuid::Uuid) -> i64 {
    redis::cmd("PTTL")
        .arg(in_redis::key(&id.to_string()))
        .query_async(&mut redis_conn(redis).await)
        .await
        .unwrap()
}

async fn stored(redis: &RedisServer, id: uuid::Uuid) -> Option<Value> {
    let raw: Option<String> = redis::cmd("HGET")
        .arg(in_redis::key(&id.to_string()))
        .arg("cart")
        .query_async(&mut redis_conn(redis).await)
        .await
        .unwrap();
    raw.map(|r| serde_json::from_str(&r).unwrap())
}

fn both<'a>(bearer: &'a str, cart_token: &'a str) -> Key<'a> {
    Key {
        bearer: Some(bearer),
        cart_token: Some(cart_token),
    }
}

async fn merge(app: &TestApp, id: uuid::Uuid, key: Key<'_>) -> reqwest::Response {
    send(app, "POST", &format!("/v1/carts/{id}/merge"), key, None).await
}

const DAY_MS: i64 = 24 * 3600 * 1000;
const KEPT_MS: i64 = 600 * 1000;

async fn a_guest_cart_is_a_redis_key_with_a_ttl_refreshed_by_every_write(
    app: TestApp,
    redis: RedisServer,
) {
    shop(&app).await;
    let (cart, token) = new_guest_cart(&app).await;
    assert_eq!(
        cart.id.get_version_num(),
        8,
        "a cart kept in Redis has a v8 id"
    );
    assert_eq!(db_rows(&app, cart.id).await, 0, "no database row");
    let ttl = pttl(&redis, cart.id).await;
    let full = 7 * DAY_MS + KEPT_MS;
    assert!(
        (full - 5_000..=full).contains(&ttl),
        "the key lives the guest TTL and ten minutes: {ttl}"
    );
    let kept = stored(&redis, cart.id).await.unwrap();
    assert_ne!(
        kept["token_hash"],
        json!(token),
        "only the token's hash is kept"
    );
    assert!(
        !kept.to_string().contains(&token),
        "the token is nowhere in Redis"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let aged = pttl(&redis, cart.id).await;
    assert!(aged <= ttl - 1400, "the key ages: {ttl} then {aged}");
    let updated = put_lines(&app, cart.id, guest(&token), &[("A", 2)]).await;
    let refreshed = pttl(&redis, cart.id).await;
    assert!(
        refreshed >= aged + 1400,
        "a write refreshes the TTL: {aged} then {refreshed}"
    );
    assert!(updated.expires_at > cart.expires_at, "and expires_at");
    assert_eq!(
        (updated.version, qtys(&updated)),
        (2, vec![("A".into(), 2, 250)])
    );
    assert_eq!(stored(&redis, cart.id).await.unwrap()["version"], 2);
    // A read does not extend the cart's life.
    carts::get_cart(&app, cart.id, guest(&token)).await;
    assert!(pttl(&redis, cart.id).await <= refreshed);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM carts").await, 0);

    // User carts stay in the database, keyed by their owner.
    let customer = app.user(Role::Customer).await;
    let (_, mine) = new_cart(&app, user(customer.token()), &json!({})).await;
    assert_eq!(mine.cart.id.get_version_num(), 7);
    assert_eq!(db_rows(&app, mine.cart.id).await, 1);
    assert_eq!(pttl(&redis, mine.cart.id).await, -2);
}

async fn concurrent_puts_to_one_guest_cart_never_mix(app: TestApp, _redis: RedisServer) {
    shop(&app).await;
    let (cart, token) = new_guest_cart(&app).await;
    let app = Arc::new(app);
    let writers = 24u32;
    let mut tasks = Vec::new();
    for i in 1..=writers {
        let (app, token) = (app.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let body = lines(&[("A", i), ("B", i), ("C", i)]);
            let response = send(
                &app,
                "PUT",
                &format!("/v1/carts/{}", cart.id),
                guest(&token),
                Some(&body),
            )
            .await;
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            response.json::<Cart>().await.unwrap().version
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort_unstable();
    let expected: Vec<i64> = (2..=i64::from(writers) + 1).collect();
    assert_eq!(
        versions, expected,
        "every PUT was one whole write of its own"
    );
    let last = carts::get_cart(&app, cart.id, guest(&token)).await;
    assert_eq!(last.version, i64::from(writers) + 1);
    let q: Vec<u32> = last.lines.iter().map(|l| l.qty).collect();
    assert!(
        q.len() == 3 && q.iter().all(|&n| n == q[0]),
        "one writer's list, whole: {q:?}"
    );

    // With If-Match on the same version, one wins and the others hear 412.
    let tag = format!("\"{}\"", last.version);
    let mut tasks = Vec::new();
    for i in 1..=8u32 {
        let (app, token, tag) = (app.clone(), token.clone(), tag.clone());
        tasks.push(tokio::spawn(async move {
            app.client
                .put(app.url(&format!("/v1/carts/{}", cart.id)))
                .header("x-cart-token", &token)
                .header("if-match", tag)
                .json(&lines(&[("A", i)]))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![200], vec![412; 7]].concat());
}

async fn an_expired_guest_cart_in_redis_answers_410_until_redis_drops_it_then_404(
    app: TestApp,
    redis: RedisServer,
) {
    shop(&app).await;
    let (cart, token) = new_guest_cart(&app).await;
    put_lines(&app, cart.id, guest(&token), &[("A", 1)]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let path = format!("/v1/carts/{}", cart.id);
    error_body(
        send(&app, "GET", &path, guest(&token), None).await,
        410,
        "cart_expired",
    )
    .await;
    error_body(
        send(&app, "PUT", &path, guest(&token), Some(&lines(&[("A", 2)]))).await,
        410,
        "cart_expired",
    )
    .await;
    let customer = app.user(Role::Customer).await;
    error_body(
        merge(&app, cart.id, both(customer.token(), &token)).await,
        410,
        "cart_expired",
    )
    .await;
    error_body(
        send(&app, "GET", &path, guest("someone-else"), None).await,
        404,
        "not_found",
    )
    .await;
    let left = pttl(&redis, cart.id).await;
    assert!(
        left > KEPT_MS - 5_000,
        "Redis keeps it ten minutes more: {left}"
    );

    // Redis drops the key when that time is up: then the cart is not found.
    let () = redis::cmd("PEXPIRE")
        .arg(in_redis::key(&cart.id.to_string()))
        .arg(1)
        .query_async::<i64>(&mut redis_conn(&redis).await)
        .await
        .map(|_| ())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    error_body(
        send(&app, "GET", &path, guest(&token), None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM carts").await, 0);
}

async fn a_merge_moves_the_lines_once_even_when_the_key_outlives_it(
    app: TestApp,
    redis: RedisServer,
) {
    shop(&app).await;
    set_stock(&app, "A", 100, 0).await;
    set_stock(&app, "B", 100, 0).await;
    let customer = app.user(Role::Customer).await;
    let (_, mine) = new_cart(&app, user(customer.token()), &json!({})).await;
    put_lines(&app, mine.cart.id, user(customer.token()), &[("A", 1)]).await;
    let (cart, token) = new_guest_cart(&app).await;
    put_lines(&app, cart.id, guest(&token), &[("A", 2), ("B", 3)]).await;
    let key = in_redis::key(&cart.id.to_string());
    let mut conn = redis_conn(&redis).await;
    let snapshot: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();

    let response = merge(&app, cart.id, both(customer.token(), &token)).await;
    assert_eq!(response.status(), 200);
    let merged: CartMerged = response.json().await.unwrap();
    assert_eq!(
        merged.cart.id, mine.cart.id,
        "into the user's database cart"
    );
    assert_eq!(
        qtys(&merged.cart),
        vec![("A".into(), 3, 250), ("B".into(), 2 + 1, 120)]
    );
    assert_eq!(pttl(&redis, cart.id).await, -2, "the guest cart left Redis");
    error_body(
        merge(&app, cart.id, both(customer.token(), &token)).await,
        404,
        "not_found",
    )
    .await;
    error_body(
        send(
            &app,
            "GET",
            &format!("/v1/carts/{}", cart.id),
            guest(&token),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;

    // A crash between the merge's commit and its delete leaves the key: put it back by hand.
    let mut restore = redis::cmd("HSET");
    restore.arg(&key);
    for (field, value) in &snapshot {
        restore.arg(field).arg(value.as_slice());
    }
    let _: i64 = restore.query_async(&mut conn).await.unwrap();
    error_body(
        merge(&app, cart.id, both(customer.token(), &token)).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(
        pttl(&redis, cart.id).await,
        -2,
        "the second merge finished the delete"
    );
    let after = carts::get_cart(&app, mine.cart.id, user(customer.token())).await;
    assert_eq!(after, merged.cart, "nothing was added twice");

    // Merges of one guest cart at once: one goes through.
    let (cart, token) = new_guest_cart(&app).await;
    put_lines(&app, cart.id, guest(&token), &[("B", 1)]).await;
    let app = Arc::new(app);
    let bearer = customer.token().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (app, token, bearer) = (app.clone(), token.clone(), bearer.clone());
        tasks.push(tokio::spawn(async move {
            merge(&app, cart.id, both(&bearer, &token))
                .await
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![200], vec![404; 5]].concat());
    let after = carts::get_cart(&app, mine.cart.id, user(customer.token())).await;
    assert_eq!(
        qtys(&after),
        vec![("A".into(), 3, 250), ("B".into(), 4, 120)],
        "B added once"
    );

    // The merge records go when their carts' keys are surely gone, at the purge.
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM merged_guest_carts").await,
        2
    );
    kassa_central::carts::purge_expired(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM merged_guest_carts").await,
        2,
        "not yet"
    );
    sqlx::query("UPDATE merged_guest_carts SET forget_at = $1")
        .bind(kassa_central::store::now_ms() - 1)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    kassa_central::carts::purge_expired(&app.state.db)
        .await
        .unwrap();
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM merged_guest_carts").await,
        0
    );
}

async fn redis_killed_new_guest_carts_go_to_the_database_and_redis_carts_answer_503(
    app: TestApp,
    mut redis: RedisServer,
) {
    shop(&app).await;
    set_stock(&app, "A", 100, 0).await;
    let (kept, kept_token) = new_guest_cart(&app).await;
    put_lines(&app, kept.id, guest(&kept_token), &[("A", 2)]).await;
    let customer = app.user(Role::Customer).await;

    tokio::task::block_in_place(|| redis.kill().unwrap());
    let path = format!("/v1/carts/{}", kept.id);
    for _ in 0..3 {
        let answers = [
            send(&app, "GET", &path, guest(&kept_token), None).await,
            send(
                &app,
                "PUT",
                &path,
                guest(&kept_token),
                Some(&lines(&[("A", 3)])),
            )
            .await,
            merge(&app, kept.id, both(customer.token(), &kept_token)).await,
        ];
        for answer in answers {
            assert_eq!(answer.headers()["retry-after"], "1");
            error_body(answer, 503, "cart_unavailable").await;
        }
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM carts").await,
        0,
        "the merge wrote nothing"
    );

    // A new guest still shops: in the database.
    let started = Instant::now();
    let (fallback, token) = new_guest_cart(&app).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no wait for Redis: {:?}",
        started.elapsed()
    );
    assert_eq!(fallback.id.get_version_num(), 7);
    assert_eq!(db_rows(&app, fallback.id).await, 1);
    put_lines(&app, fallback.id, guest(&token), &[("A", 1)]).await;

    // Redis back, empty: new carts go to it again; the database cart stays where it is and
    // merges as before; the cart Redis lost is not found.
    tokio::task::block_in_place(|| redis.restart().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let (cart, token) = new_guest_cart(&app).await;
        if cart.id.get_version_num() == 8 {
            break (cart, token);
        }
        assert!(
            Instant::now() < deadline,
            "new guest carts go to Redis again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(pttl(&redis, again.0.id).await > 0);
    assert_eq!(
        carts::get_cart(&app, fallback.id, guest(&token))
            .await
            .lines
            .len(),
        1
    );
    error_body(
        send(&app, "GET", &path, guest(&kept_token), None).await,
        404,
        "not_found",
    )
    .await;
    let response = merge(&app, fallback.id, both(customer.token(), &token)).await;
    assert_eq!(response.status(), 200);
    let merged: CartMerged = response.json().await.unwrap();
    assert_eq!(qtys(&merged.cart), vec![("A".into(), 1, 250)]);
    assert_eq!(db_rows(&app, fallback.id).await, 0);
}

async fn without_redis_a_guest_cart_is_a_database_row(app: TestApp) {
    shop(&app).await;
    let (status, created): (u16, CartCreated) = new_cart(&app, NOBODY, &json!({})).await;
    assert_eq!(status, 201);
    assert_eq!(created.cart.id.get_version_num(), 7);
    assert_eq!(db_rows(&app, created.cart.id).await, 1);
}
