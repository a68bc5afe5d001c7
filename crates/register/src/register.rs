//! [`Register`]: the one handle the shell holds, a few lines per action over the modules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kassa_domain::api::{Product, ProductInput, StockAdjustment, StockDiscrepancy, StockReason};
use kassa_domain::{Barcode, Currency, Money, Role, ShortfallView, Sku};
use uuid::Uuid;

use crate::approval::{self, Approval, Approvals};
use crate::carts::{self, CartView};
use crate::client::{CentralClient, Timeouts};
use crate::edits::{self, Conflict, Side};
use crate::error::{Error, Result};
use crate::identity::{self, Identity};
use crate::printer::{Drawer, PrinterConfig, Printing};
use crate::recommend::{self, Recommended};
use crate::report;
use crate::sale::{self, Receipt, SaleLimits, SaleMode};
use crate::secrets::SecretStore;
use crate::session::{Sessions, SignedIn, OFFLINE_SIGN_IN_MAX_AGE_DEFAULT};
use crate::shifts::{self, ShiftLimits};
use crate::store::LocalDb;
use crate::sync::{Engine, SyncConfig, SyncStatus};
use crate::{adjustments, catalog, leases, no_sale, refunds, settings, shortfalls, split, stock};
use kassa_domain::shift::{CashCount, CashMovement, MovementKind, ShiftCount, ShiftReport};
use kassa_domain::SalesReport;

/// Where the register keeps its data and finds Central.
#[derive(Debug, Clone)]
pub struct RegisterConfig {
    pub db_path: PathBuf,
    pub central_url: String,
    /// The currency carts are priced in (Central's shop currency).
    pub currency: Currency,
    pub timeouts: Timeouts,
    pub sync: SyncConfig,
    pub limits: SaleLimits,
    /// When a cash movement or an over/short at the close needs a manager.
    pub shift_limits: ShiftLimits,
    /// What the card terminal hands over for a card payment: the processor's payment-method
    /// token (`pm_card_visa` with the simulator), never card data.
    pub card_payment_method: String,
    /// Offline sign-in is refused when the last online sign-in here is older than this.
    pub offline_sign_in_max_age: Duration,
    /// The receipt printer (and the cash drawer behind it); `None`: the web view prints.
    pub printer: Option<PrinterConfig>,
}

impl RegisterConfig {
    pub fn new(db_path: PathBuf, central_url: &str) -> Self {
        Self {
            db_path,
            central_url: central_url.to_owned(),
            currency: Currency::EUR,
            timeouts: Timeouts::default(),
            sync: SyncConfig::default(),
            limits: SaleLimits::default(),
            shift_limits: ShiftLimits::default(),
            card_payment_method: "pm_card_visa".into(),
            offline_sign_in_max_age: OFFLINE_SIGN_IN_MAX_AGE_DEFAULT,
            printer: None,
        }
    }
}

/// A register: its store, its session and its sync engine.
#[derive(Debug, Clone)]
pub struct Register {
    db: LocalDb,
    sessions: Arc<Sessions>,
    engine: Arc<Engine>,
    currency: Currency,
    limits: SaleLimits,
    shift_limits: ShiftLimits,
    card_payment_method: Arc<str>,
    approvals: Arc<Approvals>,
    /// The cart a manager allowed to be sold offline past this till's stock lease.
    beyond_lease_approved: Arc<std::sync::Mutex<Option<Uuid>>>,
    printing: Arc<Printing>,
}

impl Register {
    /// Opens the local store (migrating it) and builds the client and the engine; nothing
    /// talks to Central yet.
    pub async fn open(config: RegisterConfig, secrets: Arc<dyn SecretStore>) -> Result<Self> {
        let db = LocalDb::open(&config.db_path).await?;
        let client = CentralClient::new(&config.central_url, &config.timeouts)?;
        let sessions = Arc::new(Sessions::new(
            db.clone(),
            client,
            secrets,
            config.offline_sign_in_max_age,
        ));
        let engine = Arc::new(Engine::new(db.clone(), sessions.clone(), config.sync));
        let printing = Arc::new(Printing::new(db.clone(), config.printer));
        if printing.config().is_some() {
            // Receipts left queued by the last run print as soon as the printer answers.
            tokio::spawn(Printing::run(Arc::downgrade(&printing)));
        }
        Ok(Self {
            db,
            sessions,
            engine,
            currency: config.currency,
            limits: config.limits,
            shift_limits: config.shift_limits,
            card_payment_method: config.card_payment_method.into(),
            approvals: Arc::new(Approvals::default()),
            beyond_lease_approved: Arc::default(),
            printing,
        })
    }

    pub fn db(&self) -> &LocalDb {
        &self.db
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    /// The print queue and its printer.
    pub fn printing(&self) -> &Arc<Printing> {
        &self.printing
    }

    /// Starts the background sync task; it stops when `shutdown` resolves.
    pub fn start_sync(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.engine.clone().run(shutdown))
    }

    // ---- identity and sign-in ----

    pub async fn pair(
        &self,
        manager: &str,
        password: &str,
        location: &str,
        code: &str,
    ) -> Result<Identity> {
        self.sessions.pair(manager, password, location, code).await
    }

    pub async fn identity(&self) -> Result<Option<Identity>> {
        identity::load(&self.db).await
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> Result<SignedIn> {
        let who = self.sessions.sign_in(username, password).await?;
        self.engine.kick();
        Ok(who)
    }

    /// Signs in with the PIN a manager set (online, or offline against the local verifier).
    pub async fn sign_in_pin(&self, username: &str, pin: &str) -> Result<SignedIn> {
        let who = self.sessions.sign_in_pin(username, pin).await?;
        self.engine.kick();
        Ok(who)
    }

    /// The signed-in manager sets `username`'s PIN at Central (online only).
    pub async fn set_pin(&self, username: &str, pin: &str) -> Result<()> {
        self.sessions.set_pin(username, pin).await
    }

    pub async fn sign_out(&self) -> Result<()> {
        self.sessions.sign_out().await
    }

    /// The signed-in manager (or admin), or a clear refusal naming what a cashier may not do:
    /// the shell's manager commands check here, not only the UI's hidden buttons.
    async fn manager(&self, doing: &str) -> Result<SignedIn> {
        let who = self.sessions.signed_in().await.ok_or(Error::NotSignedIn)?;
        if !who.role.at_least(Role::Manager) {
            return Err(Error::Forbidden(format!(
                "only a manager may {doing}; {} is signed in as a cashier",
                who.username
            )));
        }
        Ok(who)
    }

    // ---- catalog ----

    /// A scanned code: the product, or a clear error for an invalid or unknown barcode.
    pub async fn lookup_barcode(&self, scanned: &str) -> Result<Product> {
        let barcode = Barcode::parse(scanned.trim())
            .map_err(|e| Error::Invalid(format!("not a barcode: {e}")))?;
        catalog::by_barcode(&self.db, &barcode)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no product with barcode {barcode}")))
    }

    pub async fn search(&self, typed: &str, limit: u32) -> Result<Vec<Product>> {
        catalog::search(&self.db, typed, limit).await
    }

    /// Available stock at this register's location, pending sales included.
    pub async fn stock_available(&self, sku: &Sku) -> Result<Option<i64>> {
        let identity = identity::load(&self.db).await?.ok_or(Error::NotPaired)?;
        stock::available(&self.db, sku.as_str(), &identity.location).await
    }

    /// How many units of `sku` this till may still sell with no shortfall at Central ("3 left
    /// at this till"): what its stock lease holds less the offline sales made since. `None`
    /// when it holds no lease of the SKU.
    pub async fn lease_left(&self, sku: &Sku) -> Result<Option<i64>> {
        leases::left(&self.db, sku.as_str()).await
    }

    /// The till's stock lease as last heard from Central.
    pub async fn lease(&self) -> Result<Option<leases::TillLease>> {
        leases::current(&self.db).await
    }

    /// Gives the till's stock lease back to Central (shift close, a clean shutdown): the shop
    /// and the other tills may sell its units again. `false` when it held none.
    pub async fn return_lease(&self) -> Result<bool> {
        self.engine.return_lease().await
    }

    pub async fn frequently_bought_with(
        &self,
        product_id: Uuid,
        limit: u32,
    ) -> Result<Vec<Recommended>> {
        recommend::lookup(&self.db, product_id, limit).await
    }

    // ---- the cart ----

    /// The cart open at the till (a new empty one if none).
    pub async fn cart(&self) -> Result<CartView> {
        carts::open(&self.db, self.currency).await
    }

    /// Scans a barcode into the open cart.
    pub async fn scan(&self, scanned: &str) -> Result<CartView> {
        let product = self.lookup_barcode(scanned).await?;
        let cart = self.cart().await?;
        carts::add(&self.db, cart.id, &product, 1).await
    }

    /// Adds a product by SKU (search results, quick keys).
    pub async fn add_sku(&self, sku: &Sku, qty: u32) -> Result<CartView> {
        let product = catalog::by_sku(&self.db, sku.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("no product with SKU {sku}")))?;
        let cart = self.cart().await?;
        carts::add(&self.db, cart.id, &product, qty).await
    }

    pub async fn set_qty(&self, sku: &Sku, qty: u32) -> Result<CartView> {
        let cart = self.cart().await?;
        let limit = self.discount_limit_percent().await?;
        carts::set_qty(&self.db, cart.id, sku, qty, limit).await
    }

    /// The cashier's discount limit (percent of a line): Central's, as last pulled; the
    /// configuration's [`SaleLimits::discount_limit_percent`] until the first pull.
    pub async fn discount_limit_percent(&self) -> Result<u32> {
        settings::discount_limit_percent(&self.db, self.limits.discount_limit_percent).await
    }

    /// A manager's approval at this till (their PIN or password): online through Central's
    /// login at this register, offline through the local verifier. Used once, within minutes.
    pub async fn approve(&self, username: &str, secret: &str) -> Result<Approval> {
        self.approvals
            .approve(&self.sessions, username, secret)
            .await
    }

    /// Sets a line's absolute discount. Above [`Register::discount_limit_percent`] of the line a
    /// cashier needs a manager's `approval` (used up here, its manager and what Central verifies
    /// recorded on the line); a signed-in manager or admin needs none: they are recorded as the
    /// approver with an approval the register signs, which Central verifies whoever's session
    /// sends the order.
    pub async fn set_discount(
        &self,
        sku: &Sku,
        discount: Money,
        approval: Option<Uuid>,
    ) -> Result<CartView> {
        let cart = self.cart().await?;
        let line = cart
            .lines
            .iter()
            .find(|l| &l.sku == sku)
            .ok_or_else(|| Error::NotFound(format!("line {sku}")))?;
        let percent = self.discount_limit_percent().await?;
        let limit = carts::discount_limit(line, percent);
        if discount.currency() != limit.currency() || discount.checked_cmp(&limit)?.is_le() {
            return carts::set_discount(&self.db, cart.id, sku, discount, None).await;
        }
        match self.sessions.signed_in().await {
            Some(who) if who.role.at_least(Role::Manager) => {
                let own = approval::sign_offline(&self.sessions, &who.username).await?;
                let approved = Some((who.username.as_str(), &own));
                carts::set_discount(&self.db, cart.id, sku, discount, approved).await
            }
            _ => {
                let what = format!("a discount above {limit} ({percent} % of the line)");
                let id = approval.ok_or_else(|| {
                    Error::ApprovalRequired(format!("{what} needs a manager's approval"))
                })?;
                let granted = self.approvals.take(id, &what)?;
                let approved = Some((granted.manager.as_str(), &granted.approval));
                let set = carts::set_discount(&self.db, cart.id, sku, discount, approved).await;
                match set {
                    Ok(view) => {
                        self.approvals.finish(&self.sessions, granted).await;
                        Ok(view)
                    }
                    Err(err) => {
                        self.approvals.restore(id, granted);
                        Err(err)
                    }
                }
            }
        }
    }

    pub async fn park(&self, label: &str) -> Result<CartView> {
        let cart = self.cart().await?;
        carts::park(&self.db, cart.id, label).await?;
        self.cart().await
    }

    pub async fn resume(&self, cart_id: Uuid) -> Result<CartView> {
        carts::resume(&self.db, cart_id).await
    }

    pub async fn parked(&self) -> Result<Vec<CartView>> {
        carts::parked(&self.db).await
    }

    // ---- the shift ----

    /// Who is signed in, or a refusal.
    async fn staff(&self) -> Result<SignedIn> {
        self.sessions.signed_in().await.ok_or(Error::NotSignedIn)
    }

    /// Opens a shift with a float (a sum, or counted note by note) by whoever is signed in;
    /// returns its first X report.
    pub async fn open_shift(&self, float: &CashCount) -> Result<ShiftReport> {
        let who = self.staff().await?;
        shifts::open(&self.db, self.currency, &who.username, float).await?;
        self.x_report().await
    }

    /// The open shift's X report (nothing closed, nothing numbered). A cashier's hides the
    /// expected cash: the close is a blind count.
    pub async fn x_report(&self) -> Result<ShiftReport> {
        let who = self.staff().await?;
        shifts::x_report(&self.db, who.role.at_least(Role::Manager)).await
    }

    /// Is a shift open at this till (counted or not)?
    pub async fn shift_open(&self) -> Result<bool> {
        Ok(shifts::current(&self.db).await?.is_some())
    }

    /// A paid-in, paid-out or safe drop with its reason, in the open shift. A cashier's above
    /// [`ShiftLimits::movement_approval_above_minor`] needs a manager's `approval` (used up);
    /// a signed-in manager is their own approver.
    pub async fn cash_movement(
        &self,
        kind: MovementKind,
        amount: Money,
        reason: &str,
        approval: Option<Uuid>,
    ) -> Result<CashMovement> {
        let who = self.staff().await?;
        shifts::check_movement(self.currency, &amount, reason)?;
        let limit = Money::from_minor(
            self.shift_limits.movement_approval_above_minor,
            self.currency,
        );
        if who.role.at_least(Role::Manager) {
            let name = who.username.as_str();
            return shifts::record_movement(&self.db, kind, amount, reason, name, Some(name)).await;
        }
        if amount.checked_cmp(&limit)?.is_le() {
            return shifts::record_movement(&self.db, kind, amount, reason, &who.username, None)
                .await;
        }
        let what = format!("a {} above {limit}", kind.label().to_lowercase());
        let id = approval
            .ok_or_else(|| Error::ApprovalRequired(format!("{what} needs a manager's approval")))?;
        let granted = self.approvals.take(id, &what)?;
        let made = shifts::record_movement(
            &self.db,
            kind,
            amount,
            reason,
            &who.username,
            Some(&granted.manager),
        )
        .await;
        match made {
            Ok(movement) => {
                self.approvals.finish(&self.sessions, granted).await;
                Ok(movement)
            }
            Err(err) => {
                self.approvals.restore(id, granted);
                Err(err)
            }
        }
    }

    /// The blind count of the drawer (a sum or note by note), made once; then the expected
    /// cash and the over/short are shown, and selling stops until the next shift.
    pub async fn count_cash(&self, counted: &CashCount) -> Result<ShiftCount> {
        let who = self.staff().await?;
        shifts::count(&self.db, &who.username, counted, self.shift_limits).await
    }

    /// The open shift's count, once made (the close screen after a restart).
    pub async fn shift_count(&self) -> Result<Option<ShiftCount>> {
        shifts::counted(&self.db, self.shift_limits).await
    }

    /// Closes the counted shift and writes its Z report. An over/short beyond the tolerance
    /// needs a manager: signed in, or their `approval` (used up).
    pub async fn close_shift(&self, approval: Option<Uuid>) -> Result<ShiftReport> {
        let who = self.staff().await?;
        let Some(outcome) = shifts::counted(&self.db, self.shift_limits).await? else {
            return Err(Error::Invalid(
                "count the drawer first: the close is a blind count".into(),
            ));
        };
        let limits = self.shift_limits;
        let report = if !outcome.needs_approval || who.role.at_least(Role::Manager) {
            let approver = who
                .role
                .at_least(Role::Manager)
                .then_some(who.username.as_str());
            shifts::close(&self.db, &who.username, approver, limits).await?
        } else {
            let what = format!("an over/short of {}", outcome.over_short);
            let id = approval.ok_or_else(|| {
                Error::ApprovalRequired(format!(
                    "{what} is beyond {} either way: a manager approves the close",
                    outcome.tolerance
                ))
            })?;
            let granted = self.approvals.take(id, &what)?;
            match shifts::close(&self.db, &who.username, Some(&granted.manager), limits).await {
                Ok(report) => {
                    self.approvals.finish(&self.sessions, granted).await;
                    report
                }
                Err(err) => {
                    self.approvals.restore(id, granted);
                    return Err(err);
                }
            }
        };
        self.engine.kick();
        Ok(report)
    }

    /// Z report `z_no` of this register.
    pub async fn z_report(&self, z_no: i64) -> Result<ShiftReport> {
        self.staff().await?;
        shifts::z_report(&self.db, z_no).await
    }

    /// The last `limit` Z reports, newest first.
    pub async fn z_reports(&self, limit: u32) -> Result<Vec<ShiftReport>> {
        self.staff().await?;
        shifts::z_reports(&self.db, limit).await
    }

    // ---- checkout ----

    /// Cash checkout of the open cart: the sale and its outbox entry in one transaction, then
    /// the sync engine is woken to deliver it.
    #[tracing::instrument(name = "sale", skip_all, fields(tender = "cash"))]
    pub async fn pay_cash(&self, tendered: Money) -> Result<Receipt> {
        let cart = self.cart().await?;
        let mode = if self.sells_online().await {
            SaleMode::Online
        } else {
            SaleMode::Offline
        };
        if mode == SaleMode::Offline {
            self.check_beyond_lease(&cart).await?;
        }
        let receipt = sale::complete_cash(&self.db, cart.id, tendered, mode, self.limits).await?;
        self.engine.note_sale().await;
        self.print_receipt(&receipt, Drawer::Open).await;
        Ok(receipt)
    }

    /// Offline, a cart that goes past this till's stock lease needs a manager's approval when
    /// the location's lease settings say so (`beyond: approval`); with `warn` (the default) the
    /// cart shows the warning and the sale goes through. A signed-in manager approves by selling.
    async fn check_beyond_lease(&self, cart: &CartView) -> Result<()> {
        let asks = leases::settings(&self.db)
            .await?
            .is_some_and(|s| s.beyond == kassa_domain::lease::BeyondLease::Approval);
        if !asks {
            return Ok(());
        }
        let lines: Vec<(String, i64)> = cart
            .lines
            .iter()
            .map(|l| (l.sku.to_string(), i64::from(l.qty)))
            .collect();
        let past = leases::past(&self.db, &lines).await?;
        let approved = *self
            .beyond_lease_approved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            == Some(cart.id);
        let manager = self
            .sessions
            .signed_in()
            .await
            .is_some_and(|w| w.role.at_least(Role::Manager));
        if past.is_empty() || approved || manager {
            return Ok(());
        }
        Err(Error::ApprovalRequired(format!(
            "selling past this till's stock lease offline ({}) needs a manager's approval: \
             Central may find these units short",
            past.join("; ")
        )))
    }

    /// A manager's `approval` (see [`Register::approve`]) to sell the open cart offline past
    /// this till's stock lease; used up here, the approving manager is logged.
    pub async fn approve_beyond_lease(&self, approval: Uuid) -> Result<()> {
        let cart = self.cart().await?;
        let granted = self
            .approvals
            .take(approval, "a sale past this till's stock lease")?;
        tracing::info!(manager = %granted.manager, cart = %cart.id, "sale past the stock lease approved");
        *self
            .beyond_lease_approved
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(cart.id);
        self.approvals.finish(&self.sessions, granted).await;
        Ok(())
    }

    /// Queues a completed sale's receipt (with the drawer's pulse for cash). The sale stands
    /// whatever happens here: a failure is logged, and the receipt can be reprinted.
    async fn print_receipt(&self, receipt: &Receipt, drawer: Drawer) {
        if let Err(err) = self.printing.queue_receipt(receipt, drawer).await {
            tracing::error!(%err, receipt = %receipt.receipt_no, "queueing the receipt");
        }
    }

    /// Does a sale go to Central now? Only while Central answers and the cashier signed in
    /// online (an offline sign-in has no tokens: its sales go through the offline path).
    async fn sells_online(&self) -> bool {
        let signed_in_offline = self.sessions.signed_in().await.is_some_and(|w| w.offline);
        self.engine.status().online && !signed_in_offline
    }

    /// Card checkout of the open cart's whole total. Online: through Central and the processor
    /// (see [`crate::card`]); declined → the cart stays open and the error says why; outcome
    /// unknown → [`Error::CardPending`], settled by the sync engine. Offline (or Central out of
    /// reach): the offline card policy, or [`Error::CardUnavailable`] with nothing written.
    /// A cart of 0.00 has nothing to charge: it completes as a cash sale of nothing.
    #[tracing::instrument(name = "sale", skip_all, fields(tender = "card"))]
    pub async fn pay_card(&self) -> Result<Receipt> {
        let cart = self.cart().await?;
        if cart.totals.total.is_zero() {
            return self.pay_cash(cart.totals.total).await;
        }
        if self.sells_online().await {
            match self
                .engine
                .pay_card(cart.id, &self.card_payment_method)
                .await
            {
                Err(err @ Error::Unreachable { .. }) if err.never_sent() => {
                    tracing::info!(%err, "Central out of reach; the offline card policy applies");
                }
                Ok(receipt) => {
                    self.print_receipt(&receipt, Drawer::Closed).await;
                    return Ok(receipt);
                }
                other => return other,
            }
        }
        self.check_beyond_lease(&cart).await?;
        let receipt = sale::complete_card_offline(&self.db, cart.id, self.limits).await?;
        self.engine.note_sale().await;
        self.print_receipt(&receipt, Drawer::Closed).await;
        Ok(receipt)
    }

    /// The store's cash rounding rule, as last pulled from Central (none until then): the
    /// cash screen shows the rounded due with it.
    pub async fn cash_rounding(&self) -> Result<kassa_domain::CashRounding> {
        crate::settings::cash_rounding(&self.db).await
    }

    // ---- split tender: one sale paid by several methods ----

    /// The open cart's sale being paid in parts, if it is: the parts taken and the remaining
    /// due (also after a restart: the parts are in the store).
    pub async fn split(&self) -> Result<Option<split::SplitView>> {
        let cart = self.cart().await?;
        split::view(&self.db, cart.id).await
    }

    /// Takes `tendered` in cash as a part of the open cart's sale: what is less than the due
    /// is a part, what covers it completes the sale (the rest is change) and opens the drawer.
    pub async fn pay_part_cash(&self, tendered: Money) -> Result<split::Step> {
        let cart = self.cart().await?;
        let mode = if self.sells_online().await {
            SaleMode::Online
        } else {
            SaleMode::Offline
        };
        if mode == SaleMode::Offline {
            self.check_beyond_lease(&cart).await?;
        }
        let step = split::pay_cash(&self.db, cart.id, tendered, mode, self.limits).await?;
        self.after_part(&step, Drawer::Open).await;
        Ok(step)
    }

    /// Takes `amount` by card as a part of the open cart's sale: through Central and the
    /// processor when it answers, else under the offline card policy (on the sale's offline
    /// card parts together). Card money is exact: a part is at most the due.
    pub async fn pay_part_card(&self, amount: Money) -> Result<split::Step> {
        let cart = self.cart().await?;
        let current = split::view(&self.db, cart.id).await?;
        let offline_already = current.as_ref().is_some_and(split::SplitView::offline_card);
        if self.sells_online().await && !offline_already {
            match self
                .engine
                .pay_card_part(cart.id, amount, &self.card_payment_method)
                .await
            {
                Err(err @ Error::Unreachable { .. }) if err.never_sent() => {
                    tracing::info!(%err, "Central out of reach; the offline card policy applies");
                }
                Ok(step) => {
                    self.after_part(&step, Drawer::Closed).await;
                    return Ok(step);
                }
                other => return other,
            }
        }
        self.check_beyond_lease(&cart).await?;
        let step = split::pay_card_offline(&self.db, cart.id, amount, self.limits).await?;
        self.after_part(&step, Drawer::Closed).await;
        Ok(step)
    }

    /// Abandons the open cart's split sale: every part is given back (a card part that went
    /// through Central is refunded there first) and the cart is open again.
    pub async fn void_split(&self) -> Result<split::SplitView> {
        let cart = self.cart().await?;
        self.engine.void_split(cart.id).await
    }

    /// A part was taken: print the receipt when it completed the sale (the drawer opens when
    /// the sale took cash), and let the engine know.
    async fn after_part(&self, step: &split::Step, drawer: Drawer) {
        let split::Step::Done(receipt) = step else {
            return;
        };
        self.engine.note_sale().await;
        let cash = receipt
            .payments
            .iter()
            .any(|t| matches!(t.payment, kassa_domain::ReceiptPayment::Cash { .. }));
        let drawer = if cash { Drawer::Open } else { drawer };
        self.print_receipt(receipt, drawer).await;
    }

    // ---- printing and the cash drawer ----

    /// Prints a copy of a sale made here (by order id or receipt number), marked COPY n; n is
    /// returned. Refused when no printer is set up (the web view prints then).
    pub async fn reprint(&self, sale: &str) -> Result<u32> {
        self.sessions.signed_in().await.ok_or(Error::NotSignedIn)?;
        let receipt = refunds::sale(&self.db, sale)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no sale {sale} at this register")))?;
        self.printing.reprint(&receipt).await
    }

    /// The print queue: waiting jobs first, then the latest printed.
    pub async fn print_jobs(&self, limit: u32) -> Result<Vec<crate::printer::PrintJob>> {
        self.printing.jobs(limit).await
    }

    pub async fn printer_status(&self) -> Result<crate::printer::PrinterStatus> {
        self.printing.status().await
    }

    /// Tries the printer again now (a printer switched back on).
    pub fn retry_printing(&self) {
        self.printing.kick();
    }

    /// Prints this register's sales report over `days` days (a manager's).
    pub async fn print_sales_report(&self, days: u32) -> Result<i64> {
        let report = self.sales_report(days).await?;
        let identity = identity::load(&self.db).await?.ok_or(Error::NotPaired)?;
        let till = format!("{} till {}", identity.location, identity.register_code);
        let doc = crate::printer::documents::sales_report(&report, &till);
        self.printing.queue_document("Sales report", &doc).await
    }

    /// Prints the open shift's X report (`None`) or Z report `z_no` on the thermal printer;
    /// the print job's id (see [`crate::printer`]).
    pub async fn print_shift_report(&self, z_no: Option<i64>) -> Result<i64> {
        let (title, report) = match z_no {
            Some(z) => ("Z report", self.z_report(z).await?),
            None => ("X report", self.x_report().await?),
        };
        let doc = crate::printer::documents::shift_report(&report);
        self.printing.queue_document(title, &doc).await
    }

    /// Opens the cash drawer with no sale: a signed-in manager, or a cashier with a manager's
    /// `approval` (used up). Recorded and counted ([`crate::no_sale`]).
    pub async fn no_sale(&self, reason: &str, approval: Option<Uuid>) -> Result<no_sale::NoSale> {
        let who = self.sessions.signed_in().await.ok_or(Error::NotSignedIn)?;
        if who.role.at_least(Role::Manager) {
            return no_sale::record(
                &self.db,
                &self.printing,
                &who.username,
                &who.username,
                reason,
            )
            .await;
        }
        let id = approval.ok_or_else(|| {
            Error::ApprovalRequired("a no-sale needs a manager's approval".into())
        })?;
        let granted = self.approvals.take(id, "a no-sale")?;
        let recorded = no_sale::record(
            &self.db,
            &self.printing,
            &granted.manager,
            &who.username,
            reason,
        )
        .await;
        match recorded {
            Ok(no_sale) => {
                self.approvals.finish(&self.sessions, granted).await;
                Ok(no_sale)
            }
            Err(err) => {
                self.approvals.restore(id, granted);
                Err(err)
            }
        }
    }

    // ---- refunds ----

    /// The sale a scanned receipt code (or a typed receipt or online order number) names, for
    /// a refund: this till's from its own store, any other of the store's at Central.
    pub async fn find_sale(&self, code: &str) -> Result<crate::returns::SaleToReturn> {
        self.sessions.signed_in().await.ok_or(Error::NotSignedIn)?;
        crate::returns::find(&self.db, &self.sessions, code).await
    }

    /// The last `limit` sales made here (at most 100), newest first.
    pub async fn recent_sales(&self, limit: u32) -> Result<Vec<Receipt>> {
        refunds::recent_sales(&self.db, limit).await
    }

    /// Refunds returned `lines` of a sale that has reached Central, with a manager's approval
    /// given online (online only); the returned units are restocked.
    pub async fn refund(
        &self,
        order_id: Uuid,
        lines: Vec<(Sku, u32)>,
        approval: Uuid,
    ) -> Result<kassa_domain::api::Refund> {
        let refund = refunds::refund(
            &self.db,
            &self.sessions,
            &self.approvals,
            order_id,
            lines,
            approval,
        )
        .await?;
        self.engine.kick();
        Ok(refund)
    }

    // ---- sync ----

    pub fn sync_status(&self) -> SyncStatus {
        self.engine.status()
    }

    pub async fn sync_now(&self) -> Result<crate::sync::RoundReport> {
        self.engine.run_once().await
    }

    // ---- a manager's catalog edits ----

    /// Queues an edit of a product as the local catalog shows it now.
    pub async fn edit_product(&self, id: Uuid, input: ProductInput) -> Result<Uuid> {
        self.manager("edit products").await?;
        let base = catalog::by_id(&self.db, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("product {id}")))?;
        let edit = edits::queue_update(&self.db, &base, input).await?;
        self.engine.kick();
        Ok(edit)
    }

    pub async fn create_product(&self, input: ProductInput) -> Result<Uuid> {
        self.manager("create products").await?;
        let edit = edits::queue_create(&self.db, input).await?;
        self.engine.kick();
        Ok(edit)
    }

    /// Queues a stock adjustment or receiving at this register's location.
    pub async fn adjust_stock(
        &self,
        sku: &Sku,
        delta: i64,
        reason: StockReason,
        note: Option<String>,
    ) -> Result<Uuid> {
        self.manager("adjust or receive stock").await?;
        let identity = identity::load(&self.db).await?.ok_or(Error::NotPaired)?;
        let adjustment = StockAdjustment {
            sku: sku.clone(),
            location: identity.location,
            delta,
            reason,
            note,
        };
        let id = adjustments::queue(&self.db, &adjustment).await?;
        self.engine.kick();
        Ok(id)
    }

    pub async fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.manager("settle catalog conflicts").await?;
        edits::conflicts(&self.db).await
    }

    /// The manager's choice per field for a conflicted edit; the merge is pushed next round.
    pub async fn resolve_conflict(
        &self,
        edit_id: Uuid,
        choices: &BTreeMap<String, Side>,
    ) -> Result<ProductInput> {
        self.manager("settle catalog conflicts").await?;
        let merged = edits::resolve(&self.db, edit_id, choices).await?;
        self.engine.kick();
        Ok(merged)
    }

    /// The latest catalog edits made here and where each stands (pending, done, conflict,
    /// rejected), newest first.
    pub async fn product_edits(&self, limit: u32) -> Result<Vec<edits::EditState>> {
        self.manager("see the catalog queue").await?;
        edits::recent(&self.db, limit).await
    }

    /// The latest stock adjustments made here and where each stands, newest first.
    pub async fn stock_adjustments(&self, limit: u32) -> Result<Vec<adjustments::Queued>> {
        self.manager("see the stock queue").await?;
        adjustments::recent(&self.db, limit).await
    }

    // ---- stock shortfalls (at Central) ----

    /// The open stock shortfalls that offline sales left at this register's location (at
    /// every location with `everywhere`), oldest first. Online only: they live at Central.
    pub async fn shortfalls(&self, everywhere: bool) -> Result<Vec<ShortfallView>> {
        self.manager("see stock shortfalls").await?;
        let location = if everywhere {
            None
        } else {
            Some(
                identity::load(&self.db)
                    .await?
                    .ok_or(Error::NotPaired)?
                    .location,
            )
        };
        shortfalls::open(&self.db, &self.sessions, location.as_deref()).await
    }

    /// Resolves a shortfall at Central with a note saying how (1 to
    /// [`kassa_domain::api::RESOLUTION_CHARS_MAX`] characters; Central's words when not).
    pub async fn resolve_shortfall(&self, id: Uuid, note: &str) -> Result<StockDiscrepancy> {
        self.manager("resolve stock shortfalls").await?;
        shortfalls::resolve(&self.sessions, id, note).await
    }

    // ---- reports ----

    /// This register's sales over the last `days` days, from the local store (works offline).
    pub async fn sales_report(&self, days: u32) -> Result<SalesReport> {
        self.manager("see the sales report").await?;
        report::sales(&self.db, self.currency, days).await
    }
}
