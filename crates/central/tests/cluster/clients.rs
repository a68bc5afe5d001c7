//! Behind HAProxy every client keeps its own address: with `KASSA_TRUSTED_PROXIES` naming the
//! balancer, Central takes the client from the `X-Forwarded-For` HAProxy writes (`option
//! forwardfor` in `deploy/haproxy.cfg`), so per-address limits (anonymous browsing, logins per
//! address) hold per visitor rather than for the whole shop at once.

use crate::harness::{self, balancer, client, env_with};

/// Anonymous `GET /v1/products` through `base` as the visitor at `address` (what a CDN or an
/// outer proxy in front of HAProxy would forward); the status.
async fn browse_as(http: &reqwest::Client, base: &str, address: &str) -> u16 {
    http.get(format!("{base}/v1/products?limit=1"))
        .header("x-forwarded-for", address)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_each_visitor_has_its_own_anonymous_budget() {
    let Some(url) = harness::postgres_database().await else {
        return;
    };
    let env = env_with(
        &url,
        &[
            ("KASSA_TRUSTED_PROXIES", "127.0.0.1".into()),
            ("KASSA_ANONYMOUS_REQUESTS_PER_SECOND", "1".into()),
            ("KASSA_ANONYMOUS_REQUESTS_BURST", "5".into()),
        ],
    );
    let instances = harness::start_instances(1, &env).await;
    let Some(lb) = balancer(&instances) else {
        return;
    };
    let http = client();
    let base = lb.url();

    // One visitor browses far past its budget.
    let mut refused = 0;
    for _ in 0..20 {
        match browse_as(&http, &base, "198.51.100.1").await {
            200 => {}
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        refused >= 10,
        "the first visitor was refused {refused} of 20"
    );
    // Another visitor, behind the same balancer, is not: its budget is its own.
    assert_eq!(browse_as(&http, &base, "198.51.100.2").await, 200);
    // The first one still is (the header HAProxy passes on names it, not HAProxy).
    assert_eq!(browse_as(&http, &base, "198.51.100.1").await, 429);
}
