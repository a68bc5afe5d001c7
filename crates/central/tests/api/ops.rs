//! Operations: health, readiness, metrics, request ids, the OpenAPI document, unknown routes,
//! and 500s that never leak internals.

use kassa_domain::Role;

use crate::helpers::{error_body, TestApp};
use crate::story;

story!(
    health_ready_and_metrics_answer,
    every_response_carries_a_request_id_and_unknown_routes_get_json_errors,
    a_failing_database_gives_503_on_ready_and_a_500_that_leaks_nothing,
    text_with_a_nul_character_is_stored_or_refused_with_422_never_a_500,
    the_smallest_stock_delta_is_refused_with_422_not_a_panic,
);

/// Found by the fuzzer: `i64::MIN.abs()` overflowed.
async fn the_smallest_stock_delta_is_refused_with_422_not_a_panic(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let body = serde_json::json!({ "sku": "SKU-1", "location": "STORE-1", "delta": i64::MIN,
        "reason": "adjustment" });
    let response = app
        .post("/v1/stock/adjustments", admin.token(), &body)
        .await;
    error_body(response, 422, "invalid_delta").await;
}

/// Found by the fuzzer: PostgreSQL cannot store `\u0000` in text; that is the client's 422.
async fn text_with_a_nul_character_is_stored_or_refused_with_422_never_a_500(app: TestApp) {
    let admin = app.user(Role::Admin).await;
    let body = serde_json::json!({ "code": "NUL-1", "name": "a\u{0}b" });
    let response = app.post("/v1/locations", admin.token(), &body).await;
    match response.status().as_u16() {
        201 => assert!(app.state.config.database_url.starts_with("sqlite")),
        _ => {
            error_body(response, 422, "invalid_text").await;
        }
    }
}

async fn health_ready_and_metrics_answer(app: TestApp) {
    let cashier = app.user(Role::Cashier).await;
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(app.get("/v1/products", cashier.token()).await.status(), 200);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/v1/products",status="200"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "latency is a histogram: {metrics}"
    );
    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/products/{id}"]["put"].is_object());
}

async fn every_response_carries_a_request_id_and_unknown_routes_get_json_errors(app: TestApp) {
    let a = app.client.get(app.url("/nowhere")).send().await.unwrap();
    let b = app.client.get(app.url("/nowhere")).send().await.unwrap();
    let id_a = a.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id_a, b.headers()["x-request-id"].to_str().unwrap());
    error_body(a, 404, "not_found").await;
    let wrong_method = app
        .client
        .delete(app.url("/v1/products"))
        .send()
        .await
        .unwrap();
    error_body(wrong_method, 405, "method_not_allowed").await;
    let given = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "till-7-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        given.headers()["x-request-id"],
        "till-7-abc",
        "a caller's request id is kept"
    );
}

async fn a_failing_database_gives_503_on_ready_and_a_500_that_leaks_nothing(app: TestApp) {
    let cashier = app.user(Role::Cashier).await;
    assert_eq!(app.get("/v1/products", cashier.token()).await.status(), 200);
    app.state.db.pool().close().await;
    error_body(
        app.client.get(app.url("/ready")).send().await.unwrap(),
        503,
        "unavailable",
    )
    .await;
    let body = error_body(
        app.get("/v1/products", cashier.token()).await,
        500,
        "internal",
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("pool") && !message.contains("sqlx"),
        "internals leaked: {message}"
    );
}

/// Every parameter sits where the route reads it, and every operation documents its errors with
/// the one error body (the spec is validated and fuzzed by `./x fuzz`).
#[test]
fn the_openapi_document_declares_parameters_and_errors_of_every_operation() {
    let doc = serde_json::to_value(kassa_central::http::openapi()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for name in path.split('/').filter_map(|s| s.strip_prefix('{')) {
                let name = name.trim_end_matches('}');
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path"),
                    "{method} {path}: path parameter {name} not declared"
                );
            }
            for p in params.iter().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap();
                assert!(
                    path.contains(&format!("{{{name}}}")),
                    "{method} {path}: {name} is no path parameter"
                );
            }
            let errors = &op["responses"]["503"]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(errors, "#/components/schemas/ErrorBody", "{method} {path}");
        }
    }
}
