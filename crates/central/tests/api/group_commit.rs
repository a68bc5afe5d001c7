//! Order creation by group commit: the orders of one batch each stand or fall alone, a retried
//! key in or after a batch replays its one order, and a batch whose commit fails answers every
//! order with an error and creates none of them.
//!
//! To make a batch of known orders, a test holds the writer (`GroupCommit::hold`: it takes the
//! next order as a batch's first and waits), sends the orders one by one until each is taken or
//! queued behind the first, then lets go.

use std::time::Duration;

use kassa_central::orders::group_commit::Held;
use kassa_central::store::Backend;
use serde_json::{json, Value};

use crate::catalog::{create, ean, product_body};
use crate::checkout::{assert_ledger_balanced, count, one_unit, order, receive, seed, stock};
use crate::helpers::{error_body, TestApp};
use crate::story;

story!(
    an_order_short_of_stock_in_the_middle_of_a_batch_fails_alone,
    a_key_retried_in_a_batch_and_after_it_gives_one_order,
    a_failed_commit_answers_every_order_of_its_batch_and_creates_none,
);

/// Holds order creation's writer until the returned guard is dropped.
async fn hold_writer(app: &TestApp) -> Held {
    app.state.orders.hold().await
}

/// Waits (at most 10 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("waited 10 s for {what}");
}

type Sent = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// Sends `orders` (key, body) while the writer is held: the first is taken by the writer, the
/// others queue behind it, in order; they make one batch once the writer is let go.
async fn queue_batch(app: &TestApp, token: &str, orders: &[(&str, Value)]) -> Vec<Sent> {
    let (taken, waiting) = (app.state.orders.taken(), app.state.orders.waiting());
    let mut sent = Vec::new();
    for (i, (key, body)) in orders.iter().enumerate() {
        let request = app
            .client
            .post(app.url("/v1/orders"))
            .bearer_auth(token)
            .header("idempotency-key", *key)
            .json(body);
        sent.push(tokio::spawn(request.send()));
        if i == 0 {
            until("the writer to take the first order", || {
                app.state.orders.taken() == taken + 1
            })
            .await;
        } else {
            until("the order to queue", || {
                app.state.orders.waiting() == waiting + i
            })
            .await;
        }
    }
    sent
}

async fn answers(sent: Vec<Sent>) -> Vec<reqwest::Response> {
    let mut answers = Vec::new();
    for s in sent {
        answers.push(s.await.unwrap().unwrap());
    }
    answers
}

fn replayed(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn an_order_short_of_stock_in_the_middle_of_a_batch_fails_alone(app: TestApp) {
    let token = seed(&app, 3).await;
    let two = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 2 }] });
    let taken = app.state.orders.taken();
    let hold = hold_writer(&app).await;
    let sent = queue_batch(
        &app,
        &token,
        &[
            ("gc-a", two.clone()),
            ("gc-b", two.clone()),
            ("gc-c", one_unit("SKU-1")),
        ],
    )
    .await;
    drop(hold);
    let mut answers = answers(sent).await.into_iter();
    let (a, b, c) = (
        answers.next().unwrap(),
        answers.next().unwrap(),
        answers.next().unwrap(),
    );
    assert_eq!(app.state.orders.taken(), taken + 3);
    assert_eq!(a.status(), 201, "{}", a.text().await.unwrap());
    let short = error_body(b, 409, "insufficient_stock").await;
    assert_eq!(
        short["error"]["details"]["lines"][0]["available"], 1,
        "{short}"
    );
    assert_eq!(c.status(), 201, "{}", c.text().await.unwrap());
    let level = stock(&app, &token, "SKU-1").await;
    assert_eq!((level.reserved, level.available), (3, 0));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 2);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'order.created'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type = 'order.reserved'"
        )
        .await,
        2
    );
    // The short order's answer was recorded with its batch: its retry replays it.
    let again = order(&app, &token, "gc-b", &two).await;
    assert!(replayed(&again));
    error_body(again, 409, "insufficient_stock").await;
    assert_ledger_balanced(&app, &token, "SKU-1").await;
}

async fn a_key_retried_in_a_batch_and_after_it_gives_one_order(app: TestApp) {
    let token = seed(&app, 10).await;
    let body = one_unit("SKU-1");
    let other = json!({ "location": "STORE-1", "lines": [{ "sku": "SKU-1", "qty": 2 }] });
    let hold = hold_writer(&app).await;
    let sent = queue_batch(
        &app,
        &token,
        &[
            ("gc-key", body.clone()),
            ("gc-key", body.clone()),
            ("gc-key", other),
        ],
    )
    .await;
    drop(hold);
    let mut answers = answers(sent).await.into_iter();
    let first = answers.next().unwrap();
    let retry = answers.next().unwrap();
    let reused = answers.next().unwrap();
    assert_eq!(first.status(), 201);
    assert!(!replayed(&first));
    assert_eq!(retry.status(), 201);
    assert!(replayed(&retry), "the retry in the batch replays the first");
    let first = first.text().await.unwrap();
    assert_eq!(retry.text().await.unwrap(), first);
    error_body(reused, 422, "idempotency_key_reused").await;
    // After the batch: the same answer again, byte for byte, and still one order.
    let later = order(&app, &token, "gc-key", &body).await;
    assert_eq!(later.status(), 201);
    assert!(replayed(&later));
    assert_eq!(later.text().await.unwrap(), first);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(stock(&app, &token, "SKU-1").await.reserved, 1);
    // The order as answered is the order as stored.
    let created: Value = serde_json::from_str(&first).unwrap();
    let read: Value = app
        .get(
            &format!("/v1/orders/{}", created["id"].as_str().unwrap()),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, created);
}

/// A deferred foreign key that an order line of `POISON-1` breaks: checked at commit, so the
/// batch's statements all succeed and its commit fails.
async fn poison_commits(app: &TestApp) {
    let statements: &[&str] = match app.state.db.backend() {
        Backend::Sqlite => &[
            "CREATE TABLE poison_parent (id TEXT PRIMARY KEY)",
            "CREATE TABLE poison (ref TEXT REFERENCES poison_parent (id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER poison_lines AFTER INSERT ON order_lines WHEN NEW.sku = 'POISON-1' \
             BEGIN INSERT INTO poison (ref) VALUES ('missing'); END",
        ],
        Backend::Postgres => &[
            "CREATE TABLE poison_parent (id TEXT PRIMARY KEY)",
            "CREATE TABLE poison (ref TEXT REFERENCES poison_parent (id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.sku = 'POISON-1' THEN INSERT INTO poison (ref) VALUES ('missing'); END IF; \
             RETURN NEW; END $$",
            "CREATE TRIGGER poison_lines AFTER INSERT ON order_lines FOR EACH ROW \
             EXECUTE FUNCTION poison()",
        ],
    };
    for statement in statements {
        sqlx::query(statement)
            .execute(app.state.db.pool())
            .await
            .unwrap();
    }
}

async fn a_failed_commit_answers_every_order_of_its_batch_and_creates_none(app: TestApp) {
    let token = seed(&app, 10).await;
    create(&app, &token, &product_body("POISON-1", &ean(9), "1.00")).await;
    receive(&app, &token, "POISON-1", 10).await;
    poison_commits(&app).await;
    let hold = hold_writer(&app).await;
    let sent = queue_batch(
        &app,
        &token,
        &[
            ("gc-1", one_unit("SKU-1")),
            ("gc-2", one_unit("POISON-1")),
            ("gc-3", one_unit("SKU-1")),
        ],
    )
    .await;
    drop(hold);
    for answer in answers(sent).await {
        error_body(answer, 503, "unavailable").await;
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM events WHERE type LIKE 'order.%'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM idempotency_keys WHERE key LIKE 'gc-%'"
        )
        .await,
        0
    );
    assert_eq!(stock(&app, &token, "SKU-1").await.reserved, 0);
    assert_eq!(stock(&app, &token, "POISON-1").await.reserved, 0);
    // Nothing was recorded: the retries of the good orders create them.
    for key in ["gc-1", "gc-3"] {
        let retried = order(&app, &token, key, &one_unit("SKU-1")).await;
        assert_eq!(retried.status(), 201, "{}", retried.text().await.unwrap());
        assert!(!replayed(&retried));
    }
    assert_eq!(stock(&app, &token, "SKU-1").await.reserved, 2);
    assert_ledger_balanced(&app, &token, "SKU-1").await;
}

/// PostgreSQL: the writer's connection terminated (`pg_terminate_backend`) while the batch
/// waits for a row lock its second order needs; the first order, already done in the batch, is not
/// created either, and the writer goes on with a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_killed_mid_batch_answers_its_orders_503_and_creates_none() {
    let Some(app) = TestApp::spawn(crate::helpers::Db::Postgres).await else {
        return;
    };
    let token = seed(&app, 10).await;
    receive(&app, &token, "SKU-2", 10).await;
    let first_lock = hold_writer(&app).await;
    let sent = queue_batch(
        &app,
        &token,
        &[("kill-1", one_unit("SKU-1")), ("kill-2", one_unit("SKU-2"))],
    )
    .await;
    // The second order of the batch will wait for SKU-2's stock row.
    let mut row_lock = app.state.db.begin_write().await.unwrap();
    sqlx::query("SELECT on_hand FROM stock WHERE sku = 'SKU-2' FOR UPDATE")
        .execute(&mut *row_lock)
        .await
        .unwrap();
    let taken = app.state.orders.taken();
    drop(first_lock);
    until("the second order to join the batch", || {
        app.state.orders.taken() == taken + 1
    })
    .await;
    let writer: i32 = loop {
        let waiting: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND datname = current_database()",
        )
        .fetch_all(app.state.db.pool())
        .await
        .unwrap();
        if let [pid] = waiting[..] {
            break pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(writer)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert!(killed);
    for answer in answers(sent).await {
        error_body(answer, 503, "unavailable").await;
    }
    row_lock.rollback().await.unwrap();
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 0);
    assert_eq!(stock(&app, &token, "SKU-1").await.reserved, 0);
    // The writer goes on; the retry creates the order.
    let retried = order(&app, &token, "kill-1", &one_unit("SKU-1")).await;
    assert_eq!(retried.status(), 201, "{}", retried.text().await.unwrap());
    assert_eq!(count(&app, "SELECT COUNT(*) FROM orders").await, 1);
}
