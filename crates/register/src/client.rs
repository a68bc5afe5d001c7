//! The HTTP client for Kassa Central (reqwest over rustls, with timeouts): one method per call
//! the register makes, errors mapped to [`Error::Api`] with Central's error body.

use kassa_domain::maintenance::ReadOnlyMode;
use std::time::Duration;

use kassa_domain::api::{
    CopurchasePage, CreateOrder, CreatePayment, CreateRefund, CreateRegister, DeviceLoginRequest,
    DiscrepancyPage, ErrorBody, ErrorDetail, LoginRequest, Order, Payment, Product, ProductInput,
    ProductPage, RefreshRequest, Refund, RegisterCreated, RegisterCredential, ResolveDiscrepancy,
    SetPin, StockAdjustment, StockDiscrepancy, StockLevel, StockPage, SyncOrdersRequest,
    SyncOrdersResponse, TokenResponse,
};
use kassa_domain::api::{
    REGISTER_CATALOG_AGE_HEADER, REGISTER_OLDEST_UNSYNCED_HEADER, REGISTER_QUEUE_HEADER,
};
use kassa_domain::approval::{GrantedApproval, SaleSettings};
use kassa_domain::lease::{Lease, LeaseList, LeaseRequest, LeaseSettings, LeaseUpdate};
use kassa_domain::{IdempotencyKey, Sku};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{Context, Error, Result};

/// Timeouts of every call; a slow link must not hold a sale or the sync engine forever.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            request: Duration::from_secs(15),
        }
    }
}

/// A client for one Central; cheap to clone.
#[derive(Debug, Clone)]
pub struct CentralClient {
    base: String,
    http: reqwest::Client,
    /// What the till reports with every call (see [`SyncReport`]); the sync engine updates it.
    report: std::sync::Arc<std::sync::Mutex<Option<SyncReport>>>,
}

/// How far behind this till is, reported to Central with every call (`kassa-register-*`
/// headers) so operators see each register's queue and staleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// Sales still in the outbox.
    pub queue_orders: i64,
    /// Seconds the oldest of them has waited (0 when none).
    pub oldest_unsynced_s: i64,
    /// Seconds since the whole catalog feed was last pulled; `None` before the first pull.
    pub catalog_age_s: Option<i64>,
}

impl CentralClient {
    /// `base` is Central's URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str, timeouts: &Timeouts) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("kassa-register/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            report: std::sync::Arc::default(),
        })
    }

    /// Sets what the following calls report (shared by every clone of this client).
    pub fn set_report(&self, report: SyncReport) {
        if let Ok(mut slot) = self.report.lock() {
            *slot = Some(report);
        }
    }

    /// The headers every call carries: the trace context of the span it runs in (`traceparent`)
    /// and the till's [`SyncReport`].
    fn call_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        kassa_telemetry::inject(&mut headers);
        let report = self.report.lock().ok().and_then(|r| *r);
        if let Some(report) = report {
            let mut set = |name: &'static str, value: i64| {
                headers.insert(name, HeaderValue::from(value));
            };
            set(REGISTER_QUEUE_HEADER, report.queue_orders);
            set(REGISTER_OLDEST_UNSYNCED_HEADER, report.oldest_unsynced_s);
            if let Some(age) = report.catalog_age_s {
                set(REGISTER_CATALOG_AGE_HEADER, age);
            }
        }
        headers
    }

    /// Sends a request with [`Self::call_headers`]; a non-2xx status becomes [`Error::Api`] with
    /// Central's error body.
    async fn send(&self, req: RequestBuilder, context: &'static str) -> Result<Response> {
        let response = req
            .headers(self.call_headers())
            .send()
            .await
            .context(context)?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(response, context).await)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    #[tracing::instrument(skip_all, fields(username = %username))]
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        register: Option<RegisterCredential>,
    ) -> Result<TokenResponse> {
        let body = LoginRequest {
            username: username.to_owned(),
            password: Some(password.to_owned()),
            pin: None,
            register,
        };
        let req = self.http.post(self.url("/v1/auth/login")).json(&body);
        json(self.send(req, "signing in").await?).await
    }

    /// Signs in with a PIN, which Central accepts only with the register's credential.
    #[tracing::instrument(skip_all, fields(username = %username))]
    pub async fn login_pin(
        &self,
        username: &str,
        pin: &str,
        register: RegisterCredential,
    ) -> Result<TokenResponse> {
        let body = LoginRequest {
            username: username.to_owned(),
            password: None,
            pin: Some(pin.to_owned()),
            register: Some(register),
        };
        let req = self.http.post(self.url("/v1/auth/login")).json(&body);
        json(self.send(req, "signing in with a PIN").await?).await
    }

    /// `PUT /v1/users/{username}/pin` (a manager's token).
    #[tracing::instrument(skip_all, fields(username = %username))]
    pub async fn set_pin(&self, token: &str, username: &str, pin: &str) -> Result<()> {
        let body = SetPin {
            pin: pin.to_owned(),
        };
        let req = self
            .http
            .put(self.url(&format!("/v1/users/{username}/pin")))
            .bearer_auth(token)
            .json(&body);
        self.send(req, "setting a PIN").await.map(drop)
    }

    /// The register signs itself in (`POST /v1/auth/device`): a device session for sync.
    #[tracing::instrument(skip_all, fields(register = %register.id))]
    pub async fn device_login(&self, register: RegisterCredential) -> Result<TokenResponse> {
        let body = DeviceLoginRequest { register };
        let req = self.http.post(self.url("/v1/auth/device")).json(&body);
        json(self.send(req, "signing the register in").await?).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse> {
        let body = RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        let req = self.http.post(self.url("/v1/auth/refresh")).json(&body);
        json(self.send(req, "refreshing the session").await?).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, token: &str) -> Result<()> {
        let req = self
            .http
            .post(self.url("/v1/auth/logout"))
            .bearer_auth(token);
        self.send(req, "signing out").await.map(drop)
    }

    /// Pairs this register (a manager's token): Central answers with the register's credential.
    #[tracing::instrument(skip_all, fields(location = %req.location))]
    pub async fn create_register(
        &self,
        token: &str,
        req: &CreateRegister,
    ) -> Result<RegisterCreated> {
        let req = self
            .http
            .post(self.url("/v1/registers"))
            .bearer_auth(token)
            .json(req);
        json(self.send(req, "pairing the register").await?).await
    }

    #[tracing::instrument(skip_all, fields(since = %since))]
    pub async fn products_since(
        &self,
        token: &str,
        since: &str,
        limit: u32,
    ) -> Result<ProductPage> {
        let req = self
            .http
            .get(self.url("/v1/products"))
            .query(&[("since", since), ("limit", &limit.to_string())])
            .bearer_auth(token);
        json(self.send(req, "pulling the catalog feed").await?).await
    }

    #[tracing::instrument(skip_all, fields(since = %since))]
    pub async fn recommendations_since(
        &self,
        token: &str,
        since: &str,
        limit: u32,
    ) -> Result<CopurchasePage> {
        let req = self
            .http
            .get(self.url("/v1/recommendations"))
            .query(&[("since", since), ("limit", &limit.to_string())])
            .bearer_auth(token);
        json(self.send(req, "pulling the recommendations feed").await?).await
    }

    #[tracing::instrument(skip_all, fields(sku = %sku))]
    pub async fn stock(&self, token: &str, sku: &Sku, location: &str) -> Result<StockLevel> {
        let req = self
            .http
            .get(self.url(&format!("/v1/stock/{sku}")))
            .query(&[("location", location)])
            .bearer_auth(token);
        json(self.send(req, "pulling a stock level").await?).await
    }

    /// `GET /v1/stock?location=&after=&limit=`: a page of levels in SKU order.
    #[tracing::instrument(skip_all, fields(after = %after))]
    pub async fn stock_page(
        &self,
        token: &str,
        location: &str,
        after: &str,
        limit: u32,
    ) -> Result<StockPage> {
        let req = self
            .http
            .get(self.url("/v1/stock"))
            .query(&[
                ("location", location),
                ("after", after),
                ("limit", &limit.to_string()),
            ])
            .bearer_auth(token);
        json(self.send(req, "pulling stock levels").await?).await
    }

    /// `POST /v1/stock/adjustments` (manager) with an Idempotency-Key: a retry moves the stock
    /// once.
    #[tracing::instrument(skip_all, fields(sku = %adjustment.sku, key = %key.as_str()))]
    pub async fn adjust_stock(
        &self,
        token: &str,
        key: &IdempotencyKey,
        adjustment: &StockAdjustment,
    ) -> Result<StockLevel> {
        let req = self
            .http
            .post(self.url("/v1/stock/adjustments"))
            .bearer_auth(token)
            .header("Idempotency-Key", key.as_str())
            .json(adjustment);
        json(self.send(req, "adjusting stock").await?).await
    }

    /// `GET /v1/stock/discrepancies?open=true&location=&after=&limit=` (a manager's token): a
    /// page of the open shortfalls, oldest first; every location when `location` is `None`.
    #[tracing::instrument(skip_all)]
    pub async fn open_discrepancies(
        &self,
        token: &str,
        location: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<DiscrepancyPage> {
        let mut query = vec![("open", "true".to_owned()), ("limit", limit.to_string())];
        query.extend(location.map(|l| ("location", l.to_owned())));
        query.extend(after.map(|a| ("after", a.to_owned())));
        let req = self
            .http
            .get(self.url("/v1/stock/discrepancies"))
            .query(&query)
            .bearer_auth(token);
        json(self.send(req, "listing stock shortfalls").await?).await
    }

    /// `POST /v1/stock/discrepancies/{id}/resolve` (a manager's token): 422 `invalid_note`,
    /// 404, 409 `already_resolved`.
    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn resolve_discrepancy(
        &self,
        token: &str,
        id: Uuid,
        note: &str,
    ) -> Result<StockDiscrepancy> {
        let body = ResolveDiscrepancy {
            note: note.to_owned(),
        };
        let req = self
            .http
            .post(self.url(&format!("/v1/stock/discrepancies/{id}/resolve")))
            .bearer_auth(token)
            .json(&body);
        json(self.send(req, "resolving a stock shortfall").await?).await
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn product(&self, token: &str, id: Uuid) -> Result<Product> {
        let req = self
            .http
            .get(self.url(&format!("/v1/products/{id}")))
            .bearer_auth(token);
        json(self.send(req, "reading a product").await?).await
    }

    #[tracing::instrument(skip_all)]
    pub async fn create_product(&self, token: &str, input: &ProductInput) -> Result<Product> {
        let req = self
            .http
            .post(self.url("/v1/products"))
            .bearer_auth(token)
            .json(input);
        json(self.send(req, "creating a product").await?).await
    }

    /// `PUT /v1/products/{id}` with `If-Match: "<version>"`; a 412 is an [`Error::Api`] with
    /// `version_conflict` and Central's current row in `details.current`.
    #[tracing::instrument(skip_all, fields(id = %id, version))]
    pub async fn update_product(
        &self,
        token: &str,
        id: Uuid,
        version: i64,
        input: &ProductInput,
    ) -> Result<Product> {
        let req = self
            .http
            .put(self.url(&format!("/v1/products/{id}")))
            .bearer_auth(token)
            .header(reqwest::header::IF_MATCH, format!("\"{version}\""))
            .json(input);
        json(self.send(req, "updating a product").await?).await
    }

    #[tracing::instrument(skip_all, fields(key = %key.as_str()))]
    pub async fn create_order(
        &self,
        token: &str,
        key: &IdempotencyKey,
        order: &CreateOrder,
    ) -> Result<Order> {
        let req = self
            .http
            .post(self.url("/v1/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", key.as_str())
            .json(order);
        json(self.send(req, "creating an order").await?).await
    }

    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn order(&self, token: &str, id: Uuid) -> Result<Order> {
        let req = self
            .http
            .get(self.url(&format!("/v1/orders/{id}")))
            .bearer_auth(token);
        json(self.send(req, "reading an order").await?).await
    }

    #[tracing::instrument(skip_all, fields(order = %order_id, key = %key.as_str()))]
    pub async fn pay(
        &self,
        token: &str,
        key: &IdempotencyKey,
        order_id: Uuid,
        payment: &CreatePayment,
    ) -> Result<Payment> {
        let req = self
            .http
            .post(self.url(&format!("/v1/orders/{order_id}/payments")))
            .bearer_auth(token)
            .header("Idempotency-Key", key.as_str())
            .json(payment);
        json(self.send(req, "paying an order").await?).await
    }

    /// `POST /v1/orders/{id}/cancel`: releases the order's stock (CREATED or RESERVED only).
    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn cancel_order(&self, token: &str, id: Uuid) -> Result<Order> {
        let req = self
            .http
            .post(self.url(&format!("/v1/orders/{id}/cancel")))
            .bearer_auth(token);
        json(self.send(req, "cancelling an order").await?).await
    }

    /// `GET /v1/orders/{id}/payments`.
    #[tracing::instrument(skip_all, fields(id = %id))]
    pub async fn payments(&self, token: &str, id: Uuid) -> Result<Vec<Payment>> {
        let req = self
            .http
            .get(self.url(&format!("/v1/orders/{id}/payments")))
            .bearer_auth(token);
        json(self.send(req, "reading an order's payments").await?).await
    }

    /// `POST /v1/orders/{id}/refunds` (a manager's token) with an Idempotency-Key.
    #[tracing::instrument(skip_all, fields(order = %order_id, key = %key.as_str()))]
    pub async fn refund(
        &self,
        token: &str,
        key: &IdempotencyKey,
        order_id: Uuid,
        refund: &CreateRefund,
    ) -> Result<Refund> {
        let req = self
            .http
            .post(self.url(&format!("/v1/orders/{order_id}/refunds")))
            .bearer_auth(token)
            .header("Idempotency-Key", key.as_str())
            .json(refund);
        json(self.send(req, "refunding a sale").await?).await
    }

    /// `GET /v1/orders/{id}/refunds`: the order's refunds with their state (staff, registers).
    pub async fn refunds(&self, token: &str, order_id: Uuid) -> Result<Vec<Refund>> {
        let req = self
            .http
            .get(self.url(&format!("/v1/orders/{order_id}/refunds")))
            .bearer_auth(token);
        json(self.send(req, "reading an order's refunds").await?).await
    }

    /// `POST /v1/approvals` with a manager's session at this register: an approval Central
    /// will verify (used once, by this register, within minutes).
    #[tracing::instrument(skip_all)]
    pub async fn grant_approval(&self, token: &str) -> Result<GrantedApproval> {
        let req = self
            .http
            .post(self.url("/v1/approvals"))
            .bearer_auth(token)
            .json(&serde_json::json!({}));
        json(self.send(req, "asking Central for an approval").await?).await
    }

    /// `GET /v1/settings/sale`: what every till obeys (staff or the register's own session).
    #[tracing::instrument(skip_all)]
    /// `GET /v1/locations`: the stores, with their time zones.
    #[tracing::instrument(skip_all)]
    pub async fn locations(&self, token: &str) -> Result<Vec<kassa_domain::api::Location>> {
        let req = self.http.get(self.url("/v1/locations")).bearer_auth(token);
        json(self.send(req, "reading the locations").await?).await
    }

    pub async fn sale_settings(&self, token: &str) -> Result<SaleSettings> {
        let req = self
            .http
            .get(self.url("/v1/settings/sale"))
            .bearer_auth(token);
        json(self.send(req, "reading the sale settings").await?).await
    }

    /// `GET /v1/admin/read-only`: whether Central refuses writes for now, and its message.
    #[tracing::instrument(skip_all)]
    pub async fn read_only(&self, token: &str) -> Result<ReadOnlyMode> {
        let req = self
            .http
            .get(self.url("/v1/admin/read-only"))
            .bearer_auth(token);
        json(self.send(req, "reading Central's read-only mode").await?).await
    }

    /// `POST /v1/stock/leases` with the register's key: a retry with the same key answers the
    /// same lease.
    #[tracing::instrument(skip_all)]
    pub async fn create_lease(
        &self,
        token: &str,
        key: &IdempotencyKey,
        request: &LeaseRequest,
    ) -> Result<Lease> {
        let req = self
            .http
            .post(self.url("/v1/stock/leases"))
            .bearer_auth(token)
            .header("Idempotency-Key", key.as_ref())
            .json(request);
        json(self.send(req, "asking Central for a stock lease").await?).await
    }

    /// `PUT /v1/stock/leases/{id}`: renew, and resize when `update.lines` is given.
    #[tracing::instrument(skip_all, fields(lease = %id))]
    pub async fn update_lease(&self, token: &str, id: Uuid, update: &LeaseUpdate) -> Result<Lease> {
        let req = self
            .http
            .put(self.url(&format!("/v1/stock/leases/{id}")))
            .bearer_auth(token)
            .json(update);
        json(self.send(req, "renewing the stock lease").await?).await
    }

    /// `DELETE /v1/stock/leases/{id}`: gives back what the lease still holds.
    #[tracing::instrument(skip_all, fields(lease = %id))]
    pub async fn release_lease(&self, token: &str, id: Uuid) -> Result<Lease> {
        let req = self
            .http
            .delete(self.url(&format!("/v1/stock/leases/{id}")))
            .bearer_auth(token);
        json(self.send(req, "returning the stock lease").await?).await
    }

    /// `GET /v1/stock/leases?active=true`: the register's own active leases, newest first.
    #[tracing::instrument(skip_all)]
    pub async fn active_leases(&self, token: &str) -> Result<LeaseList> {
        let req = self
            .http
            .get(self.url("/v1/stock/leases?active=true"))
            .bearer_auth(token);
        json(
            self.send(req, "reading the register's stock leases")
                .await?,
        )
        .await
    }

    /// `GET /v1/settings/leases?location=`: how the location's tills size their leases.
    #[tracing::instrument(skip_all)]
    pub async fn lease_settings(&self, token: &str, location: &str) -> Result<LeaseSettings> {
        let req = self
            .http
            .get(self.url("/v1/settings/leases"))
            .query(&[("location", location)])
            .bearer_auth(token);
        json(self.send(req, "reading the lease settings").await?).await
    }

    /// `POST /v1/sync/shifts`: delivers a Z report (201 kept, 200 kept before).
    #[tracing::instrument(skip_all, fields(z_no = report.z_no))]
    pub async fn sync_shift(
        &self,
        token: &str,
        report: &kassa_domain::ShiftReport,
    ) -> Result<kassa_domain::ZReceived> {
        let req = self
            .http
            .post(self.url("/v1/sync/shifts"))
            .bearer_auth(token)
            .json(report);
        json(self.send(req, "delivering a Z report").await?).await
    }

    #[tracing::instrument(skip_all, fields(orders = batch.orders.len()))]
    pub async fn sync_orders(
        &self,
        token: &str,
        batch: &SyncOrdersRequest,
    ) -> Result<SyncOrdersResponse> {
        let req = self
            .http
            .post(self.url("/v1/sync/orders"))
            .bearer_auth(token)
            .json(batch);
        json(self.send(req, "syncing offline orders").await?).await
    }
}

async fn api_error(response: Response, context: &'static str) -> Error {
    let status = response.status();
    let text = match response.text().await.context(context) {
        Ok(text) => text,
        Err(err) => return err,
    };
    let detail = serde_json::from_str::<ErrorBody>(&text)
        .map(|b| b.error)
        .unwrap_or_else(|_| ErrorDetail {
            code: fallback_code(status).to_owned(),
            message: text.chars().take(200).collect(),
            details: serde_json::Value::Null,
        });
    Error::Api {
        status: status.as_u16(),
        detail,
    }
}

/// A code for errors that came without Central's error body (a proxy, a crashed server).
fn fallback_code(status: StatusCode) -> &'static str {
    if status.is_server_error() {
        "server_error"
    } else {
        "http_error"
    }
}

async fn json<T: DeserializeOwned>(response: Response) -> Result<T> {
    let bytes = response.bytes().await.context("reading Central's answer")?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt(format!("Central's answer: {e}")))
}
