//! Guest carts in Redis across instances: a cart made on one instance is read, written and merged
//! on the others, and writers on two instances at once never mix their lists.

use kassa_central::devtools::cluster::RedisServer;
use serde_json::{json, Value};

use crate::harness::{self, client, env_with, login};

async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = c.request(method, url).header("x-cart-token", token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cart_made_on_one_instance_is_written_on_the_others_and_never_mixed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(url) = harness::postgres_database().await else {
        return;
    };
    harness::load_demo(&url);
    let env = env_with(&url, &[("KASSA_REDIS_URL", redis.url())]);
    let instances = harness::start_instances(2, &env).await;
    let (a, b) = (instances[0].url(), instances[1].url());
    let c = client();

    let created: Value = c
        .post(format!("{a}/v1/carts"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let token = created["cart_token"].as_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&id).unwrap().get_version_num(),
        8,
        "kept in Redis"
    );

    // Writers on both instances at once: every PUT is one whole write.
    let mut tasks = Vec::new();
    for i in 1..=20u32 {
        let base = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (c, id, token) = (c.clone(), id.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "lines": [
                { "sku": "DEMO-0001", "qty": i },
                { "sku": "DEMO-0002", "qty": i },
            ] });
            let response = send(
                &c,
                reqwest::Method::PUT,
                format!("{base}/v1/carts/{id}"),
                &token,
                Some(body),
            )
            .await;
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            response.json::<Value>().await.unwrap()["version"]
                .as_i64()
                .unwrap()
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<i64>>());
    for base in [&a, &b] {
        let cart: Value = send(
            &c,
            reqwest::Method::GET,
            format!("{base}/v1/carts/{id}"),
            &token,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(cart["version"], 21);
        assert_eq!(
            cart["lines"][0]["qty"], cart["lines"][1]["qty"],
            "one writer's list, whole: {cart}"
        );
    }

    // Merged on B into the user's database cart: the guest cart is gone on A too.
    harness::add_user(&url, "shopper", "shopper-pass-1", "customer");
    let tokens = login(&c, &b, "shopper", "shopper-pass-1").await;
    let bearer = tokens["access_token"].as_str().unwrap();
    let merged = c
        .post(format!("{b}/v1/carts/{id}/merge"))
        .bearer_auth(bearer)
        .header("x-cart-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(merged.status(), 200);
    let merged: Value = merged.json().await.unwrap();
    assert_ne!(merged["id"].as_str().unwrap(), id);
    let gone = send(
        &c,
        reqwest::Method::GET,
        format!("{a}/v1/carts/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(gone.status(), 404);
    let again = c
        .post(format!("{a}/v1/carts/{id}/merge"))
        .bearer_auth(bearer)
        .header("x-cart-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}
