//! Nothing global lives in one process: with `KASSA_REDIS_URL`, logouts, refresh-token reuse and
//! rate limits hold on every instance; Redis killed, each instance falls back to its own limits
//! and database session checks, and shares again when Redis returns.

use std::time::{Duration, Instant};

use kassa_central::devtools::cluster::RedisServer;

use crate::harness::{self, add_user, client, env_with, gauge, get_status, login};

/// A session cache far longer than the story: without the broadcast, B and C would accept a
/// logged-out token for a minute.
fn long_cache(redis: &RedisServer) -> Vec<(&'static str, String)> {
    vec![
        ("KASSA_REDIS_URL", redis.url()),
        ("KASSA_SESSION_CACHE_TTL_MS", "60000".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_is_refused_on_the_others_at_the_next_request() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(url) = harness::postgres_database().await else {
        return;
    };
    let instances = harness::start_instances(3, &env_with(&url, &long_cache(&redis))).await;
    add_user(&url, "till", "till-pass-1", "cashier");
    let c = client();
    let (a, b, cc) = (instances[0].url(), instances[1].url(), instances[2].url());

    // Logout on A.
    let tokens = login(&c, &a, "till", "till-pass-1").await;
    let token = tokens["access_token"].as_str().unwrap();
    for base in [&a, &b, &cc] {
        assert_eq!(get_status(&c, base, "/v1/locations", token).await, 200);
    }
    let out = c
        .post(format!("{a}/v1/auth/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204, "logout");
    for base in [&b, &cc, &a] {
        assert_eq!(
            get_status(&c, base, "/v1/locations", token).await,
            401,
            "{base} accepted a logged-out token"
        );
    }

    // Refresh-token reuse on B revokes the session on A and C at once.
    let tokens = login(&c, &a, "till", "till-pass-1").await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    for base in [&a, &b, &cc] {
        assert_eq!(get_status(&c, base, "/v1/locations", &token).await, 200);
    }
    let rotated = c
        .post(format!("{a}/v1/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": first_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    let new_token = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get_status(&c, &cc, "/v1/locations", &new_token).await, 200);
    let reuse = c
        .post(format!("{b}/v1/auth/refresh"))
        .json(&serde_json::json!({"refresh_token": first_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(reuse.status(), 401, "reuse of a rotated refresh token");
    for base in [&a, &cc] {
        assert_eq!(
            get_status(&c, base, "/v1/locations", &new_token).await,
            401,
            "{base} accepted a token of a session revoked by refresh-token reuse"
        );
    }
    assert_eq!(gauge(&c, &a, "kassa_redis_up").await, Some(1.0));
}

/// Requests round-robin over `bases` as fast as they come; how many got 200 and how many 429.
async fn hammer(c: &reqwest::Client, bases: &[String], token: &str, n: usize) -> (usize, usize) {
    let (mut ok, mut limited) = (0, 0);
    for i in 0..n {
        match get_status(c, &bases[i % bases.len()], "/v1/locations", token).await {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (ok, limited)
}

/// A budget of 10 at once and 1 a second.
fn tight_limits(redis: &RedisServer) -> Vec<(&'static str, String)> {
    vec![
        ("KASSA_REDIS_URL", redis.url()),
        ("KASSA_USER_REQUESTS_PER_SECOND", "1".into()),
        ("KASSA_USER_REQUESTS_BURST", "10".into()),
        ("KASSA_LOGIN_PER_USERNAME_PER_MINUTE", "4".into()),
    ]
}

/// At most the burst plus what refilled meanwhile (and one for rounding).
fn budget(burst: usize, since: Instant) -> usize {
    burst + usize::try_from(since.elapsed().as_secs()).unwrap() + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_rate_limit_holds_across_instances() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(url) = harness::postgres_database().await else {
        return;
    };
    let instances = harness::start_instances(3, &env_with(&url, &tight_limits(&redis))).await;
    add_user(&url, "till", "till-pass-1", "cashier");
    let c = client();
    let bases: Vec<String> = instances.iter().map(|i| i.url()).collect();

    // Logins per username: 4 a minute in all, not 4 per instance.
    let mut logins_ok = 0;
    let mut token = None;
    for i in 0..9 {
        let response = c
            .post(format!("{}/v1/auth/login", bases[i % 3]))
            .json(&serde_json::json!({"username": "till", "password": "till-pass-1"}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => {
                logins_ok += 1;
                let body: serde_json::Value = response.json().await.unwrap();
                token = Some(body["access_token"].as_str().unwrap().to_owned());
            }
            429 => {}
            other => panic!("login answered {other}"),
        }
    }
    assert!(
        (4..=5).contains(&logins_ok),
        "{logins_ok} of 9 logins through 3 instances passed a 4-a-minute limit"
    );

    // Requests: a burst of 10 in all, however many instances share the traffic.
    let token = token.unwrap();
    let started = Instant::now();
    let (ok, limited) = hammer(&c, &bases, &token, 30).await;
    assert!(
        ok <= budget(10, started) && ok >= 10,
        "{ok} of 30 requests through 3 instances passed a burst of 10 ({limited} limited)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_instances_fall_back_to_local_limits_and_share_again_when_it_returns() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let Some(url) = harness::postgres_database().await else {
        return;
    };
    let mut env = tight_limits(&redis);
    env.push(("KASSA_SESSION_CACHE_TTL_MS", "60000".into()));
    let instances = harness::start_instances(2, &env_with(&url, &env)).await;
    for till in ["till", "till2", "till3"] {
        add_user(&url, till, "till-pass-1", "cashier");
    }
    let c = client();
    let (a, b) = (instances[0].url(), instances[1].url());
    let token = login(&c, &a, "till", "till-pass-1").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(get_status(&c, &b, "/v1/locations", &token).await, 200);

    redis.kill().unwrap();
    // Each instance answers on its own: the budget is per instance now (10 each), and nothing
    // fails for want of Redis.
    let started = Instant::now();
    let (ok_a, _) = hammer(&c, std::slice::from_ref(&a), &token, 15).await;
    let (ok_b, _) = hammer(&c, std::slice::from_ref(&b), &token, 15).await;
    assert!(
        ok_a >= 9 && ok_b >= 9 && ok_a + ok_b <= 2 * budget(10, started),
        "local limits while Redis is down: {ok_a} on A, {ok_b} on B"
    );
    assert_eq!(gauge(&c, &a, "kassa_redis_up").await, Some(0.0));
    let log = instances[0].log();
    assert_eq!(
        log.matches("Redis is unreachable").count(),
        1,
        "the outage is logged once:\n{log}"
    );
    // A logout while Redis is down: the other instance asks the database.
    let second = login(&c, &b, "till2", "till-pass-1").await;
    let second = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get_status(&c, &a, "/v1/locations", &second).await, 200);
    let out = c
        .post(format!("{b}/v1/auth/logout"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(get_status(&c, &a, "/v1/locations", &second).await, 401);

    // Redis returns: shared again within a few retry intervals.
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A request makes the instance try again.
        let _ = get_status(&c, &a, "/v1/locations", &token).await;
        let _ = get_status(&c, &b, "/v1/locations", &token).await;
        if gauge(&c, &a, "kassa_redis_up").await == Some(1.0)
            && gauge(&c, &b, "kassa_redis_up").await == Some(1.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "instances did not reconnect to Redis"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(instances[0].log().contains("Redis is back"));
    // A fresh user: locally A and B would pass 10 each.
    let third = login(&c, &a, "till3", "till-pass-1").await;
    let third = third["access_token"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let (ok, _) = hammer(&c, &[a.clone(), b.clone()], &third, 30).await;
    assert!(
        ok <= budget(10, started),
        "{ok} of 30 requests passed once Redis was back: the limit is not shared"
    );
}

/// The value of `kassa_cache_requests_total` for the product cache's `outcome` on `base`.
async fn product_cache_count(c: &reqwest::Client, base: &str, outcome: &str) -> f64 {
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let outcome = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|line| line.starts_with("kassa_cache_requests_total{"))
        .filter(|line| line.contains("cache=\"products\"") && line.contains(&outcome))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Product `id` from `base`: its version.
async fn product_version(c: &reqwest::Client, base: &str, id: &str) -> i64 {
    let product: serde_json::Value = c
        .get(format!("{base}/v1/products/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    product["version"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_one_instance_read_from_the_database_is_served_to_another_from_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(url) = harness::postgres_database().await else {
        return;
    };
    // Entries kept for a short while, so the story can outlive them.
    let ttl = ("KASSA_CACHE_TTL_MS", "1500".to_owned());
    let instances =
        harness::start_instances(2, &env_with(&url, &[("KASSA_REDIS_URL", redis.url()), ttl]))
            .await;
    harness::load_demo(&url);
    let c = client();
    let (a, b) = (instances[0].url(), instances[1].url());
    let page: serde_json::Value = c
        .get(format!("{a}/v1/products?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();

    // Both instances' own entries (from the change feed) and Redis's expire.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = product_cache_count(&c, &b, "shared_hit").await;
    // A reads the database and offers the product to Redis; B, whose own entry is gone, finds it
    // there instead of reading the database.
    let version = product_version(&c, &a, &id).await;
    assert_eq!(product_version(&c, &b, &id).await, version);
    let after = product_cache_count(&c, &b, "shared_hit").await;
    assert_eq!(after - before, 1.0, "B read the product from Redis");

    // A change made on A: B serves the new version within the feed's lag, never the old one
    // from Redis again.
    let manager = login(&c, &a, "manager", "manager-pass-1").await;
    let token = manager["access_token"].as_str().unwrap();
    let mut product: serde_json::Value = c
        .get(format!("{a}/v1/products/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    product["name"] = "Renamed in the story".into();
    for field in ["id", "version", "updated_at", "change_seq"] {
        product.as_object_mut().unwrap().remove(field);
    }
    let edit = c
        .put(format!("{a}/v1/products/{id}"))
        .bearer_auth(token)
        .header("if-match", format!("\"{version}\""))
        .json(&product)
        .send()
        .await
        .unwrap();
    assert_eq!(edit.status(), 200, "{}", edit.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while product_version(&c, &b, &id).await != version + 1 {
        assert!(
            Instant::now() < deadline,
            "B still serves version {version}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(product_version(&c, &b, &id).await, version + 1);
}
