//! The money model test (issue 10): seeded, replayable random sequences of orders, cash and card
//! payments (partial or full; approved, declined, processing, timed out, the processor failing
//! with 500, 429 or 409), cancels by staff, reservation expiries, refunds (by amount or lines,
//! split over card payments, two at once; the processor failing with 500, 429 or 409 and the
//! refund retried with its key; the processor refusing one, at once or after it was left
//! pending; money given back at the processor outside Kassa, so that the processor refuses
//! what Central still counts as held), retries of earlier requests with their key, webhooks
//! duplicated and out of order (the simulator's token suffixes), reconciler runs and Central
//! restarts. After every step a checker compares Central's books with themselves and with the
//! processor simulator's; at the end of each seed everything is settled and the books must agree
//! exactly.
//!
//! The checker, from one snapshot of the database and the simulator's books, per order:
//! 0 ≤ refunded ≤ paid ≤ total; paid is its succeeded payments that are not orphans, refunded
//! its pending and succeeded refunds; a CANCELLED order holds nothing (refunded = paid), a
//! REFUNDED one has no refund pending, a PAID one is paid in full; each refund is card + cash,
//! its card part its parts; each card payment gave back at most its amount, exactly its live
//! refund parts plus its orphan refund; what the order's succeeded card payments still hold is
//! at most what the processor holds for the order's intents, and equal (intent by intent,
//! amounts and number of refunds) once nothing of the order is pending; a processor intent per
//! payment at most. Per seed: one order per create key that answered 201, one payment row per
//! payment key that got that far, one refund row per refund key that got that far (however
//! often it was retried), a refund refused once failed for good, and per SKU the ledger sums
//! to on_hand and reserved is the active reservations' units. Central answers
//! `refund_rejected` only for an order the processor was made to refuse (its books never ask
//! the processor for money it does not hold otherwise); what was refunded outside Kassa is
//! counted apart when Central's books are compared with the processor's. Right after a
//! refusal: the refund is failed, the order's refunded amount and returned lines are as before
//! it, the retry with its key is refused again, and (nothing refunded outside Kassa) the same
//! refund with a new key goes through.
//!
//! A **restart** builds a new `AppState` on the same database with `kassa_central::build_state`
//! (a new pool, migrations checked, signing secret and processor client rebuilt), serves it on
//! a new port, points the simulator's webhooks at it, shuts the previous restarted server down
//! and closes its pool (a webhook it was applying may fail and is then delivered again, to the
//! new one),
//! then runs what `kassa-central serve` runs at start-up: one reconciler pass and one sweep of
//! expired reservations. Every later request goes to the new instance.
//!
//! One Central per backend runs the seeds one after another; each seed makes its own SKUs and
//! orders and the checker looks only at those, so seeds do not interfere. A seed ends settled
//! (nothing pending), so the next one starts from quiet books.
//!
//! Each seed's walk is bounded: a few steps, bounded settling, and [`SEED_TIME_MAX`] for the
//! whole seed. The test prints the seeds run, the total time, the slowest seed and what the
//! walk did (refusals, retries, refunds outside Kassa), and with 100 seeds or more fails if it
//! never refused a refund, retried one after a fault or refunded outside Kassa.
//!
//! `KASSA_MODEL_SEED=N` runs only seed N; `KASSA_MODEL_SEEDS=M` runs seeds 0..M (default 200).
//! `./x test --model-seed N` runs one seed on both backends. A failure prints its seed and the
//! steps so far.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kassa_central::payments::reconcile;
use kassa_central::Config;
use kassa_domain::Role;
use kassa_payments::IntentStatus;
use serde_json::{json, Value};
use sqlx::Row;
use uuid::Uuid;

use crate::catalog::{create, ean, product_body};
use crate::helpers::TestApp;
use crate::story_with;

story_with!(model_config: a_random_walk_of_money_keeps_the_books_equal_to_the_processor);

/// Settled by the reconciler at once; a card payment whose replay gets no answer is given up
/// at once (only `pm_sim_error500` does that here); a short processor timeout, so
/// `pm_sim_timeout` costs 200 ms, not 2 s.
fn model_config(c: &mut Config) {
    c.reconcile_after = Duration::ZERO;
    c.card_pending_give_up = Duration::ZERO;
    c.processor_timeout = Duration::from_millis(200);
}

const SEEDS_DEFAULT: u64 = 200;
/// Steps per seed: between these two.
const STEPS_MIN: u64 = 10;
const STEPS_MAX: u64 = 18;
/// How long a `pm_sim_processing` intent stays processing.
const PROCESSING_MS: u64 = 60;
/// Settling at the end of a seed: reconciler passes at most, 50 ms apart.
const SETTLE_ROUNDS_MAX: usize = 80;
const SKUS_PER_SEED: usize = 3;
/// Reads of both books before the processor's stood still long enough.
const SNAPSHOT_TRIES_MAX: usize = 20;
const UNITS_PER_SKU: i64 = 30;

fn seeds() -> Vec<u64> {
    let parse = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().parse::<u64>().expect("a whole number"))
    };
    match parse("KASSA_MODEL_SEED") {
        Some(one) => vec![one],
        None => (0..parse("KASSA_MODEL_SEEDS").unwrap_or(SEEDS_DEFAULT)).collect(),
    }
}

/// splitmix64: small, fast and the same everywhere, so a seed replays the same choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// In `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + i64::try_from(self.below(u64::try_from(hi - lo + 1).unwrap_or(1))).unwrap()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }

    fn key(&mut self, what: &str) -> String {
        format!("model-{what}-{:016x}", self.next())
    }
}

fn amount(minor: i64) -> Value {
    json!({ "amount": format!("{}.{:02}", minor / 100, minor % 100), "currency": "EUR" })
}

/// The card tokens a model payment uses: the card's behaviour and the webhook mode suffix.
const CARDS: &[&str] = &[
    "pm_card_visa",
    "pm_card_visa__twice",
    "pm_card_visa__out_of_order",
    "pm_card_visa__none",
    "pm_card_mastercard__twice",
    "pm_card_chargeDeclined",
    "pm_card_chargeDeclined__twice",
    "pm_sim_processing",
    "pm_sim_processing__twice",
    "pm_sim_processing__out_of_order",
    "pm_sim_timeout",
    "pm_sim_timeout__none",
    "pm_sim_error500",
];

/// Processor failures injected before a card payment or refund.
const FAULTS: &[u16] = &[500, 429, 409];
/// What the simulator answers to a refund it refuses for good when told to (`fail_next_posts`):
/// a 4xx that is neither 409 nor 429, so Central takes it as final.
const REFUSAL: u16 = 400;
/// One seed's walk and settling at most: a seed that takes longer fails with its number.
const SEED_TIME_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Cashier,
    Manager,
}

/// A request the model sent, to retry later with the same key.
#[derive(Debug, Clone)]
struct Sent {
    who: Who,
    path: String,
    key: String,
    body: Value,
    status: u16,
    text: String,
}

#[derive(Debug, Clone)]
struct Tracked {
    id: Uuid,
    lines: Vec<(String, u32)>,
}

/// The Central being talked to: the one the harness started (it owns the database directory and
/// the simulator), or the latest restart.
struct World {
    first: TestApp,
    restarted: Option<TestApp>,
    admin: String,
    cashier: String,
    manager: String,
    /// STORE-1's id.
    location: String,
    /// A processor failure was injected and may not have been used yet.
    faults_armed: std::cell::Cell<bool>,
    /// What the seeds did that the checks are about, summed over seeds (printed at the end, and
    /// checked to be more than nothing so the walk cannot pass vacuously).
    stats: std::cell::RefCell<Stats>,
}

#[derive(Debug, Default)]
struct Stats {
    /// Refunds Central answered `refund_rejected` (a fresh refusal, not a retry's).
    refused: u64,
    /// Retries with the key of a refused refund (each answered the refusal again).
    refused_retried: u64,
    /// Refused refunds whose amount was then refunded with a new key.
    refused_then_refunded: u64,
    /// Refunds retried with their key after the processor failed (500, 429, 409).
    retried_after_fault: u64,
    /// Refunds made at the processor outside Kassa (a dashboard), which Central then cannot make.
    outside: u64,
    /// Refund keys sent, and refund rows they made.
    refund_keys: u64,
    refund_rows: u64,
}

impl World {
    fn central(&self) -> &TestApp {
        self.restarted.as_ref().unwrap_or(&self.first)
    }

    fn sim(&self) -> &kassa_processor_sim::SimHandle {
        self.first.sim.as_ref().unwrap()
    }

    fn token(&self, who: Who) -> &str {
        match who {
            Who::Cashier => &self.cashier,
            Who::Manager => &self.manager,
        }
    }

    async fn send(&self, who: Who, path: &str, key: Option<&str>, body: &Value) -> (u16, String) {
        let app = self.central();
        let mut request = app
            .client
            .post(app.url(path))
            .bearer_auth(self.token(who))
            .json(body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    async fn restart(&mut self) {
        let config = (*self.central().state.config).clone();
        let next = TestApp::start(config, None).await;
        self.sim()
            .set_webhook_url(Some(next.url("/v1/webhooks/payments")));
        if let Some(old) = self.restarted.replace(next) {
            let db = old.state.db.clone();
            drop(old);
            db.pool().close().await;
        }
        let state = &self.central().state;
        reconcile::run_once(state).await.unwrap();
        kassa_central::stock::sweep_expired(state).await.unwrap();
    }

    /// The next processor POSTs fail with `faults` (one each, in order).
    fn arm(&self, faults: &[u16]) {
        if !faults.is_empty() {
            self.sim().fail_next_posts(faults);
            self.faults_armed.set(true);
        }
    }

    /// Consumes injected processor failures no request used (a step refused before it reached
    /// the processor), so they never hit a later, unrelated call: a POST with no parameters
    /// answers the injected failure while one is queued, else a 400 of its own.
    async fn drain_faults(&self) {
        if !self.faults_armed.replace(false) {
            return;
        }
        let client = reqwest::Client::new();
        for _ in 0..=FAULTS.len() + 1 {
            let text = client
                .post(format!("{}/v1/refunds", self.sim().base_url))
                .bearer_auth("sk_test_kassa")
                .header("idempotency-key", format!("drain-{}", Uuid::new_v4()))
                .form(&[("reason", "drain")])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if !text.contains("injected failure") {
                return;
            }
        }
    }
}

/// What one seed did so far; printed if the seed fails.
struct Trail {
    seed: u64,
    backend: &'static str,
    steps: Vec<String>,
}

impl Drop for Trail {
    /// Prints the steps when the seed failed, or when it is the one seed asked for.
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed || std::env::var_os("KASSA_MODEL_SEED").is_some() {
            eprintln!(
                "\nmodel seed {} {} on {} after {} steps (rerun: ./x test --model-seed {}):",
                self.seed,
                if failed { "FAILED" } else { "passed" },
                self.backend,
                self.steps.len(),
                self.seed
            );
            for (i, step) in self.steps.iter().enumerate() {
                eprintln!("  {i:>2}. {step}");
            }
        }
    }
}

struct Seed {
    rng: Rng,
    skus: Vec<String>,
    orders: Vec<Tracked>,
    /// Create keys that answered 201, with their order.
    created: BTreeMap<String, Uuid>,
    /// Payment keys whose request wrote a payment row: (order, cash or card) → keys.
    cash_keys: BTreeMap<Uuid, BTreeSet<String>>,
    card_keys: BTreeMap<Uuid, BTreeSet<String>>,
    /// Refund keys → (their order, the refund ids their answers named): one at most each.
    refund_keys: BTreeMap<String, (Uuid, BTreeSet<Uuid>)>,
    /// Refund keys Central answered `refund_rejected`.
    refused_keys: BTreeSet<String>,
    /// Refund keys Central answered 201: money that moved.
    refunded_keys: BTreeSet<String>,
    /// Orders the processor may refuse a refund of: told to refuse one, or refunded outside.
    refusable: BTreeSet<Uuid>,
    /// Intents refunded outside Kassa: intent → (minor units, refunds).
    outside: BTreeMap<String, (i64, u32)>,
    sent: Vec<Sent>,
    trail: Trail,
}

async fn a_random_walk_of_money_keeps_the_books_equal_to_the_processor(app: TestApp) {
    let backend = match app.state.db.backend() {
        kassa_central::store::Backend::Sqlite => "sqlite",
        _ => "postgres",
    };
    let started = std::time::Instant::now();
    let admin = app.user(Role::Admin).await.tokens.access_token;
    let created = app
        .post(
            "/v1/locations",
            &admin,
            &json!({ "code": "STORE-1", "name": "One" }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let cashier = app.user(Role::Cashier).await.tokens.access_token;
    let manager = app.user(Role::Manager).await.tokens.access_token;
    app.sim
        .as_ref()
        .unwrap()
        .set_processing_delay(Duration::from_millis(PROCESSING_MS));
    let location = kassa_central::store::locations::find_by_code(&app.state.db, "STORE-1")
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string();
    let mut world = World {
        first: app,
        restarted: None,
        admin,
        cashier,
        manager,
        location,
        faults_armed: std::cell::Cell::new(false),
        stats: std::cell::RefCell::new(Stats::default()),
    };
    let seeds = seeds();
    let mut slowest = (0, Duration::ZERO);
    for &seed in &seeds {
        let began = std::time::Instant::now();
        let walk = run_seed(&mut world, seed, backend);
        if tokio::time::timeout(SEED_TIME_MAX, walk).await.is_err() {
            panic!(
                "model seed {seed} on {backend} took more than {SEED_TIME_MAX:?} \
                 (rerun: ./x test --model-seed {seed})"
            );
        }
        let took = began.elapsed();
        if took > slowest.1 {
            slowest = (seed, took);
        }
    }
    let stats = world.stats.borrow();
    eprintln!(
        "money model: {} seeds on {backend} in {:.1} s (slowest: seed {} in {:.1} s); {stats:?}",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        slowest.0,
        slowest.1.as_secs_f64(),
    );
    if seeds.len() >= 100 {
        assert!(
            stats.refused > 0 && stats.refused_retried > 0 && stats.refused_then_refunded > 0,
            "the walk never had a refund refused, retried and given back: {stats:?}"
        );
        assert!(
            stats.outside > 0 && stats.retried_after_fault > 0,
            "the walk never refunded outside Kassa or retried a refund after a fault: {stats:?}"
        );
    }
}

async fn run_seed(world: &mut World, seed: u64, backend: &'static str) {
    let mut s = Seed {
        rng: Rng(seed ^ 0x4B41_5353_4130_0000),
        skus: Vec::new(),
        orders: Vec::new(),
        created: BTreeMap::new(),
        cash_keys: BTreeMap::new(),
        card_keys: BTreeMap::new(),
        refund_keys: BTreeMap::new(),
        refused_keys: BTreeSet::new(),
        refunded_keys: BTreeSet::new(),
        refusable: BTreeSet::new(),
        outside: BTreeMap::new(),
        sent: Vec::new(),
        trail: Trail {
            seed,
            backend,
            steps: Vec::new(),
        },
    };
    make_skus(world, &mut s, seed).await;
    let steps = STEPS_MIN + s.rng.below(STEPS_MAX - STEPS_MIN + 1);
    for _ in 0..steps {
        step(world, &mut s).await;
        world.drain_faults().await;
        check(world, &s, false).await;
    }
    settle(world, &mut s).await;
    check(world, &s, true).await;
}

async fn make_skus(world: &World, s: &mut Seed, seed: u64) {
    let app = world.central();
    for i in 0..SKUS_PER_SEED {
        let sku = format!("M{seed}-{i}");
        let price = s.rng.between(50, 999);
        let n = 1_000_000 + (seed % 10_000_000) * 4 + i as u64;
        let body = product_body(&sku, &ean(n), amount(price)["amount"].as_str().unwrap());
        create(app, &world.admin, &body).await;
        let receive = json!({ "sku": sku, "location": "STORE-1", "delta": UNITS_PER_SKU, "reason": "receiving" });
        let response = app
            .post("/v1/stock/adjustments", &world.admin, &receive)
            .await;
        assert_eq!(response.status(), 201);
        s.skus.push(sku);
    }
}

/// An order's money as Central's database holds it.
#[derive(Debug, Clone)]
struct OrderRow {
    status: String,
    /// What the order owes: its total with its cash rounding (paid = total + cash_rounding).
    total: i64,
    paid: i64,
    refunded: i64,
}

async fn order_row(world: &World, id: Uuid) -> OrderRow {
    let row = sqlx::query(&format!(
        "SELECT status, total_minor + cash_rounding_minor AS total_minor, paid_minor, refunded_minor FROM orders WHERE id = '{id}'"
    ))
    .fetch_one(world.central().state.db.pool())
    .await
    .unwrap();
    OrderRow {
        status: row.try_get("status").unwrap(),
        total: row.try_get("total_minor").unwrap(),
        paid: row.try_get("paid_minor").unwrap(),
        refunded: row.try_get("refunded_minor").unwrap(),
    }
}

/// One random step, written to the trail with what it got back.
async fn step(world: &mut World, s: &mut Seed) {
    let roll = s.rng.below(100);
    let has_orders = !s.orders.is_empty();
    let what = match roll {
        _ if !has_orders => new_order(world, s).await,
        0..=10 => new_order(world, s).await,
        11..=24 => pay_cash(world, s).await,
        25..=48 => pay_card(world, s).await,
        49..=52 => cancel(world, s).await,
        53..=56 => expire(world, s).await,
        57..=72 => refund(world, s).await,
        73..=78 => concurrent_refunds(world, s).await,
        79..=85 => retry(world, s).await,
        86..=88 => refund_outside(world, s).await,
        89..=93 => {
            let done = reconcile::run_once(&world.central().state).await.unwrap();
            format!("reconcile: {done:?}")
        }
        94..=96 => {
            world.restart().await;
            "restart Central".to_owned()
        }
        _ => {
            tokio::time::sleep(Duration::from_millis(PROCESSING_MS + 30)).await;
            "wait for webhooks".to_owned()
        }
    };
    s.trail.steps.push(what);
}

fn pick_order(s: &mut Seed) -> Tracked {
    let i = usize::try_from(s.rng.below(s.orders.len() as u64)).unwrap();
    s.orders[i].clone()
}

/// Any `status` the model accepts from Central; a 500, or a refusal that means the books and
/// the processor disagree, fails the seed. `refund_rejected` is fine only for a refund (at
/// `path`) of an order the processor was told to refuse, or whose money was partly given back
/// outside Kassa.
fn assert_acceptable(s: &Seed, what: &str, path: &str, status: u16, text: &str) {
    let code = error_code(text);
    let refusable = refund_order(path).is_some_and(|id| s.refusable.contains(&id));
    let fine = match status {
        200 | 201 | 202 | 402 | 409 => true,
        422 => match code.as_str() {
            "payment_rejected" => false,
            "refund_rejected" => refusable,
            _ => true,
        },
        502 => code == "processor_unavailable",
        _ => false,
    };
    assert!(
        fine,
        "seed {}: {what} answered {status} {text}",
        s.trail.seed
    );
}

fn error_code(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The order of a refund request's path.
fn refund_order(path: &str) -> Option<Uuid> {
    path.strip_prefix("/v1/orders/")?
        .strip_suffix("/refunds")?
        .parse()
        .ok()
}

/// The refund an answer names: a 201's body, a refusal's details, a pending refund's message.
fn refund_named(status: u16, text: &str) -> Option<Uuid> {
    let v: Value = serde_json::from_str(text).ok()?;
    match status {
        201 => v["id"].as_str()?.parse().ok(),
        422 => v["error"]["details"]["refund_id"].as_str()?.parse().ok(),
        502 => v["error"]["message"]
            .as_str()?
            .split_whitespace()
            .skip_while(|w| *w != "refund")
            .nth(1)?
            .parse()
            .ok(),
        _ => None,
    }
}

/// Notes what the answer to a refund request at `path` with `key` says: the refund it named,
/// and whether it was a refusal (returned).
fn note_refund(
    world: &World,
    s: &mut Seed,
    path: &str,
    key: &str,
    status: u16,
    text: &str,
) -> bool {
    let order = refund_order(path).unwrap();
    if !s.refund_keys.contains_key(key) {
        world.stats.borrow_mut().refund_keys += 1;
    }
    let named = &mut s
        .refund_keys
        .entry(key.to_owned())
        .or_insert_with(|| (order, BTreeSet::new()))
        .1;
    named.extend(refund_named(status, text));
    let refused = status == 422 && error_code(text) == "refund_rejected";
    if refused {
        s.refused_keys.insert(key.to_owned());
    }
    if status == 201 {
        s.refunded_keys.insert(key.to_owned());
    }
    refused
}

async fn new_order(world: &World, s: &mut Seed) -> String {
    let count = 1 + s.rng.below(SKUS_PER_SEED as u64);
    let mut lines = Vec::new();
    for sku in &s.skus[..usize::try_from(count).unwrap()] {
        let qty = u32::try_from(1 + s.rng.below(3)).unwrap();
        lines.push((sku.clone(), qty));
    }
    let body = json!({ "location": "STORE-1", "lines": lines.iter()
        .map(|(sku, qty)| json!({ "sku": sku, "qty": qty })).collect::<Vec<_>>() });
    let key = s.rng.key("order");
    let (status, text) = world
        .send(Who::Cashier, "/v1/orders", Some(&key), &body)
        .await;
    assert_acceptable(s, "creating an order", "/v1/orders", status, &text);
    let mut what = format!("order {lines:?} key {key}: {status}");
    if status == 201 {
        let order: Value = serde_json::from_str(&text).unwrap();
        let id: Uuid = order["id"].as_str().unwrap().parse().unwrap();
        what = format!("{what} {id} total {}", order["totals"]["total"]["amount"]);
        s.created.insert(key.clone(), id);
        s.orders.push(Tracked { id, lines });
    }
    s.sent.push(Sent {
        who: Who::Cashier,
        path: "/v1/orders".into(),
        key,
        body,
        status,
        text,
    });
    what
}

/// Full outstanding, part of it, or (rarely) something the order cannot take.
fn payment_amount(s: &mut Seed, o: &OrderRow) -> i64 {
    let outstanding = o.total - o.paid;
    if outstanding <= 0 || s.rng.chance(5) {
        return 1 + s.rng.between(0, 200);
    }
    if s.rng.chance(60) {
        outstanding
    } else {
        s.rng.between(1, outstanding)
    }
}

async fn pay_cash(world: &World, s: &mut Seed) -> String {
    let Some(o) = pick_in(world, s, "RESERVED").await else {
        return new_order(world, s).await;
    };
    let row = order_row(world, o.id).await;
    let minor = payment_amount(s, &row);
    let tendered = minor + s.rng.between(0, 500);
    let body = json!({ "method": "cash", "amount": amount(minor), "tendered": amount(tendered) });
    let key = s.rng.key("cash");
    let path = format!("/v1/orders/{}/payments", o.id);
    let (status, text) = world.send(Who::Cashier, &path, Some(&key), &body).await;
    assert_acceptable(s, "a cash payment", &path, status, &text);
    if status == 201 {
        s.cash_keys.entry(o.id).or_default().insert(key.clone());
    }
    let what = format!(
        "cash {minor} on {} ({}) key {key}: {status}",
        o.id, row.status
    );
    s.sent.push(Sent {
        who: Who::Cashier,
        path,
        key,
        body,
        status,
        text,
    });
    what
}

/// Whether a card payment's answer means Central wrote its payment row.
fn wrote_card_row(status: u16, text: &str) -> bool {
    match status {
        201 | 202 | 402 | 502 => true,
        422 => text.contains("payment_rejected"),
        _ => false,
    }
}

async fn pay_card(world: &World, s: &mut Seed) -> String {
    let Some(o) = pick_in(world, s, "RESERVED").await else {
        return new_order(world, s).await;
    };
    let row = order_row(world, o.id).await;
    let minor = payment_amount(s, &row);
    let token = *s.rng.pick(CARDS);
    let fault = s.rng.chance(15).then(|| *s.rng.pick(FAULTS));
    // A fault before pm_sim_timeout makes the reconciler's replay the first real charge, whose
    // answer never comes back (and with __none no webhook either): this walk found that the
    // reconciler used to give such a payment up as failed while the processor had charged it.
    // It now gives up only on the processor's own saved failure and reads the rest back.
    world.arm(fault.as_slice());
    let body = json!({ "method": "card", "amount": amount(minor), "payment_method": token });
    let key = s.rng.key("card");
    let path = format!("/v1/orders/{}/payments", o.id);
    let (status, text) = world.send(Who::Cashier, &path, Some(&key), &body).await;
    assert_acceptable(s, "a card payment", &path, status, &text);
    if status == 402 {
        assert!(
            token.starts_with("pm_card_chargeDeclined"),
            "seed {}: {token} declined: {text}",
            s.trail.seed
        );
    }
    if wrote_card_row(status, &text) {
        s.card_keys.entry(o.id).or_default().insert(key.clone());
    }
    let what = format!(
        "card {minor} {token} (fault {fault:?}) on {} ({}) key {key}: {status}",
        o.id, row.status
    );
    s.sent.push(Sent {
        who: Who::Cashier,
        path,
        key,
        body,
        status,
        text,
    });
    what
}

async fn cancel(world: &World, s: &mut Seed) -> String {
    let Some(o) = pick_in(world, s, "RESERVED").await else {
        return new_order(world, s).await;
    };
    let path = format!("/v1/orders/{}/cancel", o.id);
    let (status, text) = world.send(Who::Cashier, &path, None, &json!({})).await;
    assert_acceptable(s, "a cancel", &path, status, &text);
    format!("cancel {}: {status}", o.id)
}

/// The order's reservation runs out now: its `expires_at` is moved into the past and the
/// sweeper runs.
async fn expire(world: &World, s: &mut Seed) -> String {
    let Some(o) = pick_in(world, s, "RESERVED").await else {
        return new_order(world, s).await;
    };
    let state = &world.central().state;
    sqlx::query(&format!(
        "UPDATE reservations SET expires_at = 1 WHERE order_id = '{}' AND status = 'active'",
        o.id
    ))
    .execute(state.db.pool())
    .await
    .unwrap();
    let released = kassa_central::stock::sweep_expired(state).await.unwrap();
    format!("expire {}: {released} released", o.id)
}

/// A refund body: an amount (within, or now and then beyond, what is refundable) or returned
/// lines.
fn refund_body(s: &mut Seed, o: &Tracked, row: &OrderRow) -> Value {
    if s.rng.chance(40) {
        let (sku, qty) = s.rng.pick(&o.lines).clone();
        let back = u32::try_from(s.rng.between(1, i64::from(qty))).unwrap();
        return json!({ "lines": [{ "sku": sku, "qty": back }], "reason": "model return" });
    }
    let refundable = row.paid - row.refunded;
    let minor = if refundable <= 0 || s.rng.chance(5) {
        refundable.max(0) + 1
    } else if s.rng.chance(30) {
        refundable
    } else {
        s.rng.between(1, refundable)
    };
    json!({ "amount": amount(minor), "reason": "model goodwill" })
}

/// Mostly (nine times in ten) an order in `status`: anything else is refused before it
/// starts, which is worth trying now and then. `None` (four times in five) when no order is in
/// `status`: the caller does something more useful instead.
async fn pick_in(world: &World, s: &mut Seed, status: &str) -> Option<Tracked> {
    let ids = s
        .orders
        .iter()
        .map(|o| format!("'{}'", o.id))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!("SELECT id FROM orders WHERE id IN ({ids}) AND status = '{status}'");
    let found: Vec<String> = sqlx::query_scalar(&sql)
        .fetch_all(world.central().state.db.pool())
        .await
        .unwrap();
    let fitting: Vec<Tracked> = s
        .orders
        .iter()
        .filter(|o| found.contains(&o.id.to_string()))
        .cloned()
        .collect();
    if fitting.is_empty() && s.rng.chance(80) {
        None
    } else if fitting.is_empty() || s.rng.chance(10) {
        Some(pick_order(s))
    } else {
        Some(s.rng.pick(&fitting).clone())
    }
}

async fn refund(world: &World, s: &mut Seed) -> String {
    let Some(o) = pick_in(world, s, "PAID").await else {
        return pay_cash(world, s).await;
    };
    let row = order_row(world, o.id).await;
    let returned = returned_units(world, o.id).await;
    let body = refund_body(s, &o, &row);
    let faults = refund_faults(world, s).await;
    if faults.contains(&REFUSAL) {
        s.refusable.insert(o.id);
    }
    world.arm(&faults);
    let key = s.rng.key("refund");
    let path = format!("/v1/orders/{}/refunds", o.id);
    let (mut status, mut text) = world.send(Who::Manager, &path, Some(&key), &body).await;
    assert_acceptable(s, "a refund", &path, status, &text);
    let mut refused = note_refund(world, s, &path, &key, status, &text);
    let mut what = format!(
        "refund {body} (faults {faults:?}) of {} ({} paid {} refunded {}) key {key}: {status}",
        o.id, row.status, row.paid, row.refunded
    );
    // The till retries a refund the processor did not answer, with its key (now and then after
    // the reconciler had a go, or failing again).
    if status == 502 && s.rng.chance(70) {
        if s.rng.chance(40) {
            let done = reconcile::run_once(&world.central().state).await.unwrap();
            what = format!("{what}; reconcile: {done:?}");
        } else if s.rng.chance(25) {
            let again = *s.rng.pick(FAULTS);
            world.arm(&[again]);
            what = format!("{what}; fault {again}");
        }
        (status, text) = world.send(Who::Manager, &path, Some(&key), &body).await;
        assert_acceptable(s, "a refund's retry", &path, status, &text);
        refused |= note_refund(world, s, &path, &key, status, &text);
        world.stats.borrow_mut().retried_after_fault += 1;
        what = format!("{what}; retried: {status}");
    }
    if refused {
        world.drain_faults().await;
        let after = after_refusal(world, s, &o, &row, returned, (&path, &key, &body), &text).await;
        what = format!("{what}; {after}");
    }
    s.sent.push(Sent {
        who: Who::Manager,
        path,
        key,
        body,
        status,
        text,
    });
    what
}

/// Processor failures to inject before a refund: a transient one (500, 429, 409) now and then,
/// and while nothing of the seed is in motion (no webhook or replay can take it instead) a
/// refusal, alone or after a transient failure (the refund pending, then refused).
async fn refund_faults(world: &World, s: &mut Seed) -> Vec<u16> {
    let roll = s.rng.below(100);
    if roll < 20 {
        return vec![*s.rng.pick(FAULTS)];
    }
    if roll >= 38 || pending(world, s).await {
        return Vec::new();
    }
    if roll < 30 {
        vec![REFUSAL]
    } else {
        vec![*s.rng.pick(FAULTS), REFUSAL]
    }
}

/// Units of the order marked returned.
async fn returned_units(world: &World, id: Uuid) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT CAST(COALESCE(SUM(returned_qty), 0) AS BIGINT) FROM order_lines WHERE order_id = '{id}'"
    ))
    .fetch_one(world.central().state.db.pool())
    .await
    .unwrap()
}

/// After Central refused a refund (`refusal`, its answer) of `o` (`before`: the order, and
/// `returned` its returned units, before the refund was asked): the refund is failed and counts
/// for nothing, its amount and lines can be refunded again, the retry with its key is refused
/// again, and where the processor still holds all Central counts (nothing refunded outside
/// Kassa) the same refund with a new key goes through.
async fn after_refusal(
    world: &World,
    s: &mut Seed,
    o: &Tracked,
    before: &OrderRow,
    returned: i64,
    (path, key, body): (&str, &str, &Value),
    refusal: &str,
) -> String {
    let at = format!("seed {}, refund key {key} of {}", s.trail.seed, o.id);
    world.stats.borrow_mut().refused += 1;
    let id = refund_named(422, refusal).unwrap_or_else(|| panic!("{at}: {refusal}"));
    let books = Books::load(world, s).await;
    let status = books
        .refunds_of(o.id)
        .find(|r| r.id == id.to_string())
        .map(|r| r.status.clone());
    assert_eq!(
        status.as_deref(),
        Some("failed"),
        "{at}: refused refund {id}"
    );
    assert_eq!(
        books.orders[&o.id].refunded, before.refunded,
        "{at}: a refused refund gives its amount back to what can be refunded"
    );
    assert_eq!(
        returned_units(world, o.id).await,
        returned,
        "{at}: a refused refund's lines can be returned again"
    );
    let (status, again) = world.send(Who::Manager, path, Some(key), body).await;
    assert_eq!(
        (status, error_code(&again), refund_named(status, &again)),
        (422, "refund_rejected".to_owned(), Some(id)),
        "{at}: the retry of a refused refund is refused again: {again}"
    );
    world.stats.borrow_mut().refused_retried += 1;
    if s.outside.keys().any(|i| intent_of(world, o.id, i)) {
        return format!("refused ({id}), refused again on retry");
    }
    let fresh = s.rng.key("refund");
    let (status, text) = world.send(Who::Manager, path, Some(&fresh), body).await;
    assert_eq!(
        status, 201,
        "{at}: the same refund with a new key, once the processor takes it again: {text}"
    );
    note_refund(world, s, path, &fresh, status, &text);
    world.stats.borrow_mut().refused_then_refunded += 1;
    s.sent.push(Sent {
        who: Who::Manager,
        path: path.to_owned(),
        key: fresh.clone(),
        body: body.clone(),
        status,
        text,
    });
    format!("refused ({id}), refused again on retry, then refunded with key {fresh}: 201")
}

/// Whether `intent` is one of order `id`'s at the processor.
fn intent_of(world: &World, id: Uuid, intent: &str) -> bool {
    world
        .sim()
        .intents_of_order(&id.to_string())
        .iter()
        .any(|i| i.id == intent)
}

/// The shop gives money back at the processor's dashboard, outside Kassa: Central still counts
/// it as held, so the processor refuses a later refund of it (all of it, or what goes beyond
/// what is left). The checker counts these refunds apart.
async fn refund_outside(world: &World, s: &mut Seed) -> String {
    let Some(o) = pick_in(world, s, "PAID").await else {
        return refund(world, s).await;
    };
    let books = Books::load(world, s).await;
    let intents = world.sim().intents_of_order(&o.id.to_string());
    let held: Vec<_> = intents
        .iter()
        .filter(|i| {
            i.status == IntentStatus::Succeeded
                && i.held_minor() > 0
                && books.payments_of(o.id).any(|p| {
                    Some(&p.id) == i.payment_id.as_ref()
                        && p.status == "succeeded"
                        && p.orphan.is_none()
                })
        })
        .collect();
    if held.is_empty() {
        return refund(world, s).await;
    }
    let i = *s.rng.pick(&held);
    let minor = if s.rng.chance(50) {
        i.held_minor()
    } else {
        s.rng.between(1, i.held_minor())
    };
    let response = reqwest::Client::new()
        .post(format!("{}/v1/refunds", world.sim().base_url))
        .bearer_auth("sk_test_kassa")
        .header("idempotency-key", s.rng.key("dashboard"))
        .form(&[
            ("payment_intent", i.id.clone()),
            ("amount", minor.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let entry = s.outside.entry(i.id.clone()).or_default();
    entry.0 += minor;
    entry.1 += 1;
    s.refusable.insert(o.id);
    world.stats.borrow_mut().outside += 1;
    format!(
        "refund {minor} of {} ({}) at the processor, outside Kassa",
        i.id, o.id
    )
}

async fn concurrent_refunds(world: &World, s: &mut Seed) -> String {
    let Some(o) = pick_in(world, s, "PAID").await else {
        return pay_card(world, s).await;
    };
    let row = order_row(world, o.id).await;
    let path = format!("/v1/orders/{}/refunds", o.id);
    let mut tasks = Vec::new();
    let mut requests = Vec::new();
    for _ in 0..2 {
        let body = refund_body(s, &o, &row);
        let key = s.rng.key("refund");
        let app = world.central();
        let request = app
            .client
            .post(app.url(&path))
            .bearer_auth(&world.manager)
            .header("idempotency-key", &key)
            .json(&body);
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }));
        requests.push((key, body));
    }
    let mut what = format!(
        "two refunds at once of {} ({} paid {} refunded {}):",
        o.id, row.status, row.paid, row.refunded
    );
    for (task, (key, body)) in tasks.into_iter().zip(requests) {
        let (status, text) = task.await.unwrap();
        assert_acceptable(s, "a concurrent refund", &path, status, &text);
        if note_refund(world, s, &path, &key, status, &text) {
            world.stats.borrow_mut().refused += 1;
        }
        what = format!("{what} [{body} key {key}: {status}]");
        s.sent.push(Sent {
            who: Who::Manager,
            path: path.clone(),
            key,
            body,
            status,
            text,
        });
    }
    what
}

/// Sends an earlier request again with its key: a stored answer comes back byte for byte, and
/// nothing happens twice.
async fn retry(world: &World, s: &mut Seed) -> String {
    if s.sent.is_empty() {
        return "retry: nothing sent yet".into();
    }
    let i = usize::try_from(s.rng.below(s.sent.len() as u64)).unwrap();
    let first = s.sent[i].clone();
    let (status, text) = world
        .send(first.who, &first.path, Some(&first.key), &first.body)
        .await;
    assert_acceptable(s, "a retry", &first.path, status, &text);
    if refund_order(&first.path).is_some() {
        let refused_before = s.refused_keys.contains(&first.key);
        let refused = note_refund(world, s, &first.path, &first.key, status, &text);
        assert!(
            refused || !refused_before,
            "seed {}: the retry of refused refund key {} answered {status} {text}",
            s.trail.seed,
            first.key
        );
        let mut stats = world.stats.borrow_mut();
        match (refused_before, refused) {
            (true, _) => stats.refused_retried += 1,
            (false, true) => stats.refused += 1,
            _ => {}
        }
    }
    if [201, 202, 402].contains(&first.status) {
        assert_eq!(
            (status, &text),
            (first.status, &first.text),
            "seed {}: the retry of {} key {} is not the first answer",
            s.trail.seed,
            first.path,
            first.key
        );
    }
    if first.path == "/v1/orders" && status == 201 && first.status != 201 {
        let order: Value = serde_json::from_str(&text).unwrap();
        let id: Uuid = order["id"].as_str().unwrap().parse().unwrap();
        s.created.insert(first.key.clone(), id);
    }
    if first.path.ends_with("/payments") {
        let id: Uuid = first.path.split('/').nth(3).unwrap().parse().unwrap();
        let keys = if first.body["method"] == "cash" {
            (status == 201).then_some(&mut s.cash_keys)
        } else {
            wrote_card_row(status, &text).then_some(&mut s.card_keys)
        };
        if let Some(keys) = keys {
            keys.entry(id).or_default().insert(first.key.clone());
        }
    }
    if first.status == 502 && [201, 402].contains(&status) {
        // The answer the key keeps from now on.
        (s.sent[i].status, s.sent[i].text) = (status, text);
    }
    format!(
        "retry {} key {} (first {}): {status}",
        first.path, first.key, first.status
    )
}

/// Runs the reconciler and waits for processing cards and webhooks until nothing of the seed
/// is pending (bounded).
async fn settle(world: &World, s: &mut Seed) {
    for round in 0..SETTLE_ROUNDS_MAX {
        if !pending(world, s).await {
            s.trail.steps.push(format!("settled after {round} rounds"));
            return;
        }
        reconcile::run_once(&world.central().state).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "seed {}: still pending after {SETTLE_ROUNDS_MAX} reconciler rounds",
        s.trail.seed
    );
}

/// Whether any payment, refund or orphan of the seed is pending, or the processor still has
/// an intent processing.
async fn pending(world: &World, s: &Seed) -> bool {
    let books = Books::load(world, s).await;
    let processing = s.orders.iter().any(|o| {
        world
            .sim()
            .intents_of_order(&o.id.to_string())
            .iter()
            .any(|i| i.status == IntentStatus::Processing)
    });
    processing || s.orders.iter().any(|o| books.pending(o.id))
}

#[derive(Debug, Clone)]
struct PaymentRow {
    id: String,
    order_id: Uuid,
    method: String,
    status: String,
    amount: i64,
    refunded: i64,
    orphan: Option<String>,
    processor_ref: Option<String>,
}

#[derive(Debug, Clone)]
struct RefundRow {
    id: String,
    order_id: Uuid,
    status: String,
    amount: i64,
    card: i64,
    cash: i64,
    processor_key: String,
}

#[derive(Debug, Clone)]
struct PartRow {
    refund_id: String,
    payment_id: String,
    amount: i64,
    sent: bool,
}

async fn rows(tx: &mut sqlx::Transaction<'_, sqlx::Any>, sql: &str) -> Vec<sqlx::any::AnyRow> {
    sqlx::query(sql).fetch_all(&mut **tx).await.unwrap()
}

/// The seed's rows, read in one go.
struct Books {
    orders: BTreeMap<Uuid, OrderRow>,
    payments: Vec<PaymentRow>,
    refunds: Vec<RefundRow>,
    parts: Vec<PartRow>,
}

impl Books {
    async fn load(world: &World, s: &Seed) -> Self {
        let pool = world.central().state.db.pool();
        let ids = s
            .orders
            .iter()
            .map(|o| format!("'{}'", o.id))
            .collect::<Vec<_>>()
            .join(",");
        let ids = if ids.is_empty() { "''".into() } else { ids };
        // One snapshot: a webhook committing between two reads must not look like a broken
        // invariant.
        let mut tx = pool.begin().await.unwrap();
        if world.central().state.db.backend() == kassa_central::store::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let mut orders = BTreeMap::new();
        for row in rows(
            &mut tx,
            &format!(
                "SELECT id, status, total_minor + cash_rounding_minor AS total_minor, paid_minor, refunded_minor FROM orders \
             WHERE id IN ({ids})"
            ),
        )
        .await
        {
            let id: String = row.try_get("id").unwrap();
            orders.insert(
                id.parse().unwrap(),
                OrderRow {
                    status: row.try_get("status").unwrap(),
                    total: row.try_get("total_minor").unwrap(),
                    paid: row.try_get("paid_minor").unwrap(),
                    refunded: row.try_get("refunded_minor").unwrap(),
                },
            );
        }
        let payments = rows(
            &mut tx,
            &format!(
                "SELECT id, order_id, method, status, amount_minor, refunded_minor, orphan, \
             processor_ref FROM payments WHERE order_id IN ({ids}) ORDER BY created_at, id"
            ),
        )
        .await
        .iter()
        .map(|row| PaymentRow {
            id: row.try_get("id").unwrap(),
            order_id: row
                .try_get::<String, _>("order_id")
                .unwrap()
                .parse()
                .unwrap(),
            method: row.try_get("method").unwrap(),
            status: row.try_get("status").unwrap(),
            amount: row.try_get("amount_minor").unwrap(),
            refunded: row.try_get("refunded_minor").unwrap(),
            orphan: row.try_get("orphan").unwrap(),
            processor_ref: row.try_get("processor_ref").unwrap(),
        })
        .collect();
        let refunds = rows(
            &mut tx,
            &format!(
                "SELECT id, order_id, status, amount_minor, card_minor, cash_minor, processor_key FROM refunds \
             WHERE order_id IN ({ids})"
            ),
        )
        .await
        .iter()
        .map(|row| RefundRow {
            id: row.try_get("id").unwrap(),
            order_id: row
                .try_get::<String, _>("order_id")
                .unwrap()
                .parse()
                .unwrap(),
            status: row.try_get("status").unwrap(),
            amount: row.try_get("amount_minor").unwrap(),
            card: row.try_get("card_minor").unwrap(),
            cash: row.try_get("cash_minor").unwrap(),
            processor_key: row.try_get("processor_key").unwrap(),
        })
        .collect();
        let parts = rows(
            &mut tx,
            &format!(
            "SELECT p.refund_id, p.payment_id, p.amount_minor, p.processor_ref FROM refund_parts p \
             JOIN refunds r ON r.id = p.refund_id WHERE r.order_id IN ({ids})"
        ),
        )
        .await
        .iter()
        .map(|row| PartRow {
            refund_id: row.try_get("refund_id").unwrap(),
            payment_id: row.try_get("payment_id").unwrap(),
            amount: row.try_get("amount_minor").unwrap(),
            sent: row
                .try_get::<Option<String>, _>("processor_ref")
                .unwrap()
                .is_some(),
        })
        .collect();
        tx.commit().await.unwrap();
        Self {
            orders,
            payments,
            refunds,
            parts,
        }
    }

    fn payments_of(&self, id: Uuid) -> impl Iterator<Item = &PaymentRow> {
        self.payments.iter().filter(move |p| p.order_id == id)
    }

    fn refunds_of(&self, id: Uuid) -> impl Iterator<Item = &RefundRow> {
        self.refunds.iter().filter(move |r| r.order_id == id)
    }

    /// A payment, refund or orphan refund of the order is still waiting for the processor.
    fn pending(&self, id: Uuid) -> bool {
        self.payments_of(id)
            .any(|p| p.status == "pending" || p.orphan.as_deref() == Some("pending"))
            || self.refunds_of(id).any(|r| r.status == "pending")
    }
}

/// The invariants, from the database and the simulator. `settled`: at the end of a seed,
/// where Central and the processor must agree exactly.
async fn check(world: &World, s: &Seed, settled: bool) {
    let seed = s.trail.seed;
    let (books, intents) = snapshot(world, s).await;
    assert_eq!(
        books.orders.len(),
        s.orders.len(),
        "seed {seed}: an order the model created is missing"
    );
    for o in &s.orders {
        check_order(s, &books, o.id, &intents[&o.id], settled);
    }
    let refund_rows = check_keys(s, &books);
    if settled {
        world.stats.borrow_mut().refund_rows += refund_rows;
    }
    check_stock(world, s).await;
}

type Intents = BTreeMap<Uuid, Vec<kassa_processor_sim::IntentSummary>>;

fn sim_books(world: &World, s: &Seed) -> Intents {
    s.orders
        .iter()
        .map(|o| (o.id, world.sim().intents_of_order(&o.id.to_string())))
        .collect()
}

/// Central's books and the processor's, as they stood at one moment: the processor's are read
/// before and after Central's, again (bounded) until they did not move meanwhile. Whatever
/// Central changed during its read then only moved it towards the processor's (a success or
/// a refund reaches the processor before Central records it as done).
async fn snapshot(world: &World, s: &Seed) -> (Books, Intents) {
    for _ in 0..SNAPSHOT_TRIES_MAX {
        let before = sim_books(world, s);
        let books = Books::load(world, s).await;
        if sim_books(world, s) == before {
            return (books, before);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!(
        "seed {}: the processor's books kept moving while Central's were read",
        s.trail.seed
    );
}

fn check_order(
    s: &Seed,
    books: &Books,
    id: Uuid,
    intents: &[kassa_processor_sim::IntentSummary],
    settled: bool,
) {
    let seed = s.trail.seed;
    let o = &books.orders[&id];
    let at = format!("seed {seed}, order {id} {o:?}");
    assert!(
        0 <= o.refunded && o.refunded <= o.paid && o.paid <= o.total,
        "{at}: 0 ≤ refunded ≤ paid ≤ total"
    );
    let counted: i64 = books
        .payments_of(id)
        .filter(|p| p.status == "succeeded" && p.orphan.is_none())
        .map(|p| p.amount)
        .sum();
    assert_eq!(
        o.paid, counted,
        "{at}: paid is the sum of its succeeded payments that are not orphans"
    );
    let refunds: i64 = books
        .refunds_of(id)
        .filter(|r| r.status != "failed")
        .map(|r| r.amount)
        .sum();
    assert_eq!(
        o.refunded, refunds,
        "{at}: refunded is the sum of its pending and succeeded refunds"
    );
    match o.status.as_str() {
        "CANCELLED" => assert_eq!(o.refunded, o.paid, "{at}: a cancelled order holds money"),
        "PAID" => assert_eq!(o.paid, o.total, "{at}: PAID but not paid in full"),
        "REFUNDED" => assert!(
            o.refunded == o.paid && !books.refunds_of(id).any(|r| r.status == "pending"),
            "{at}: REFUNDED with money held or a refund pending"
        ),
        "RESERVED" | "CREATED" => assert!(o.paid < o.total, "{at}: paid in full, still open"),
        other => panic!("{at}: unexpected status {other}"),
    }
    for r in books.refunds_of(id) {
        assert_eq!(r.amount, r.card + r.cash, "{at}: refund {r:?} card + cash");
        let parts: i64 = books
            .parts
            .iter()
            .filter(|p| p.refund_id == r.id)
            .map(|p| p.amount)
            .sum();
        if r.status != "failed" {
            assert_eq!(
                parts, r.card,
                "{at}: refund {r:?}: its parts are its card part"
            );
        }
    }
    let mut kassa_holds = 0;
    for p in books.payments_of(id) {
        assert!(
            0 <= p.refunded && p.refunded <= p.amount,
            "{at}: payment {p:?} refunded beyond its amount"
        );
        if p.method == "cash" {
            assert_eq!(p.refunded, 0, "{at}: cash payment {p:?} drawn on");
            continue;
        }
        if p.orphan.is_some() {
            assert_eq!(
                p.refunded, p.amount,
                "{at}: orphan {p:?} not all given back"
            );
        }
        let parts: i64 = books
            .parts
            .iter()
            .filter(|part| part.payment_id == p.id && refund_live(books, &part.refund_id))
            .map(|part| part.amount)
            .sum();
        let orphan = if p.orphan.is_some() { p.amount } else { 0 };
        assert_eq!(
            p.refunded,
            parts + orphan,
            "{at}: payment {p:?}: refunded is its live refund parts and orphan refund"
        );
        if p.status == "succeeded" {
            assert!(
                p.processor_ref.is_some(),
                "{at}: card payment {p:?} succeeded with no intent"
            );
            kassa_holds += p.amount - p.refunded;
        }
    }
    let sim_holds: i64 = intents.iter().map(|i| i.held_minor()).sum();
    // What was given back outside Kassa Central cannot know of: it still counts it as held.
    let outside: i64 = intents
        .iter()
        .filter_map(|i| s.outside.get(&i.id))
        .map(|(minor, _)| minor)
        .sum();
    let kassa_holds = kassa_holds - outside;
    assert!(
        kassa_holds <= sim_holds,
        "{at}: Central says its cards hold {kassa_holds} (less {outside} refunded outside Kassa), the processor holds {sim_holds}: {intents:?}"
    );
    let mut per_payment = BTreeMap::new();
    for i in intents {
        let Some(payment) = &i.payment_id else {
            panic!("{at}: intent {i:?} names no payment");
        };
        assert!(
            books.payments_of(id).any(|p| &p.id == payment),
            "{at}: intent {i:?} for a payment Central does not have"
        );
        *per_payment.entry(payment.clone()).or_insert(0) += 1;
    }
    assert!(
        per_payment.values().all(|n| *n == 1),
        "{at}: a payment was sent to the processor as two intents: {intents:?}"
    );
    if settled || !books.pending(id) && intents.iter().all(|i| !in_motion(i.status)) {
        assert_eq!(
            kassa_holds, sim_holds,
            "{at}: nothing pending, yet Central's cards hold {kassa_holds} and the processor's {sim_holds}: {intents:?}"
        );
        check_intents_settled(books, id, intents, &s.outside, &at);
    }
}

/// An intent whose outcome is still coming (the simulator settles it by itself).
fn in_motion(status: IntentStatus) -> bool {
    status == IntentStatus::Processing
}

fn refund_live(books: &Books, refund_id: &str) -> bool {
    books
        .refunds
        .iter()
        .any(|r| r.id == refund_id && r.status != "failed")
}

/// With nothing pending: each intent agrees with its payment, and each refund the processor
/// made is one Central counted (a sent refund part or the orphan refund).
fn check_intents_settled(
    books: &Books,
    id: Uuid,
    intents: &[kassa_processor_sim::IntentSummary],
    outside: &BTreeMap<String, (i64, u32)>,
    at: &str,
) {
    for i in intents {
        let (outside_minor, outside_refunds) = outside.get(&i.id).copied().unwrap_or_default();
        let payment = books
            .payments_of(id)
            .find(|p| Some(&p.id) == i.payment_id.as_ref())
            .unwrap();
        let succeeded = i.status == IntentStatus::Succeeded;
        assert_eq!(
            payment.status == "succeeded",
            succeeded,
            "{at}: payment {payment:?} and its intent {i:?} disagree"
        );
        if succeeded {
            assert_eq!(
                payment.refunded + outside_minor,
                i.refunded_minor,
                "{at}: payment {payment:?} (and {outside_minor} outside Kassa) and its intent {i:?} gave back different amounts"
            );
            let sent_parts = books
                .parts
                .iter()
                .filter(|p| p.payment_id == payment.id && p.sent)
                .count();
            let orphan = usize::from(payment.orphan.is_some());
            assert_eq!(
                usize::try_from(i.refunds - outside_refunds).unwrap(),
                sent_parts + orphan,
                "{at}: the processor made {} refunds of {payment:?} ({outside_refunds} outside Kassa), Central counts {sent_parts} parts and {orphan} orphan refund",
                i.refunds
            );
        }
    }
}

/// Each idempotency key had one effect: one order per create key, one payment row per payment
/// key, one refund row per refund key however often it was retried (the refunds a cancellation
/// makes have no key of the model's), a refund refused once is failed for good, and one
/// answered 201 succeeded (never a 201 for money that did not move). Returns
/// the seed's refund rows.
fn check_keys(s: &Seed, books: &Books) -> u64 {
    let seed = s.trail.seed;
    let distinct: BTreeSet<&Uuid> = s.created.values().collect();
    assert_eq!(
        distinct.len(),
        s.created.len(),
        "seed {seed}: two create keys gave one order"
    );
    let mut refund_rows = 0;
    for o in &s.orders {
        let rows = |method: &str| {
            books
                .payments_of(o.id)
                .filter(|p| p.method == method)
                .count()
        };
        let keys = |map: &BTreeMap<Uuid, BTreeSet<String>>| map.get(&o.id).map_or(0, BTreeSet::len);
        assert_eq!(
            rows("cash"),
            keys(&s.cash_keys),
            "seed {seed}, order {}: cash payment rows vs keys that paid cash",
            o.id
        );
        assert_eq!(
            rows("card"),
            keys(&s.card_keys),
            "seed {seed}, order {}: card payment rows vs keys that reached the processor",
            o.id
        );
        let refunds: BTreeSet<String> = books
            .refunds_of(o.id)
            .filter(|r| !r.processor_key.starts_with("kassa-cancel-"))
            .map(|r| r.id.clone())
            .collect();
        let mut named = BTreeSet::new();
        for (key, (_, ids)) in s.refund_keys.iter().filter(|(_, (id, _))| *id == o.id) {
            assert!(
                ids.len() <= 1,
                "seed {seed}, order {}: refund key {key} made refunds {ids:?}",
                o.id
            );
            named.extend(ids.iter().map(Uuid::to_string));
        }
        assert_eq!(
            refunds, named,
            "seed {seed}, order {}: refund rows vs the refunds the refund keys' answers named",
            o.id
        );
        refund_rows += refunds.len() as u64;
    }
    let status_of = |key: &String| {
        let id = s.refund_keys[key].1.first().map(Uuid::to_string);
        let status = books
            .refunds
            .iter()
            .find(|r| Some(&r.id) == id.as_ref())
            .map(|r| r.status.clone());
        (id, status)
    };
    for key in &s.refused_keys {
        let (id, status) = status_of(key);
        assert_eq!(
            status.as_deref(),
            Some("failed"),
            "seed {seed}: refund key {key} was refused, its refund {id:?} must stay failed"
        );
    }
    for key in &s.refunded_keys {
        let (id, status) = status_of(key);
        assert_eq!(
            status.as_deref(),
            Some("succeeded"),
            "seed {seed}: refund key {key} answered 201, its refund {id:?} must have succeeded"
        );
    }
    refund_rows
}

/// The ledger sums to on_hand and the reserved units are the active reservations', per SKU.
async fn check_stock(world: &World, s: &Seed) {
    let pool = world.central().state.db.pool();
    let skus = s
        .skus
        .iter()
        .map(|sku| format!("'{sku}'"))
        .collect::<Vec<_>>()
        .join(",");
    let orders: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(DISTINCT order_id) FROM order_lines WHERE sku IN ({skus})"
    ))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        usize::try_from(orders).unwrap(),
        s.orders.len(),
        "seed {}: orders of the seed's SKUs vs create keys that answered 201",
        s.trail.seed
    );
    // One statement, one snapshot: a payment converting a reservation meanwhile commits its
    // stock, ledger and reservation changes all or none.
    let rows = sqlx::query(&format!(
        "SELECT s.sku, s.on_hand, s.reserved, \
         (SELECT CAST(COALESCE(SUM(g.delta), 0) AS BIGINT) FROM stock_ledger g \
          WHERE g.sku = s.sku AND g.location_id = s.location_id) AS ledger, \
         (SELECT CAST(COALESCE(SUM(l.qty), 0) AS BIGINT) FROM reservation_lines l \
          JOIN reservations r ON r.id = l.reservation_id \
          WHERE r.status = 'active' AND l.sku = s.sku AND r.location_id = s.location_id) \
          AS held \
         FROM stock s WHERE s.sku IN ({skus}) AND s.location_id = '{}'",
        world.location
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        rows.len(),
        s.skus.len(),
        "seed {}: stock rows",
        s.trail.seed
    );
    for row in rows {
        let get = |name: &str| row.try_get::<i64, _>(name).unwrap();
        let sku: String = row.try_get("sku").unwrap();
        assert_eq!(
            (get("ledger"), get("reserved")),
            (get("on_hand"), get("held")),
            "seed {}, {sku}: (ledger sum, reserved) must be (on_hand, active reservations)",
            s.trail.seed
        );
    }
}
