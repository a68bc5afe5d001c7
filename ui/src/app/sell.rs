//! The selling screen, keyboard-first: the scan field always has the focus; a keyboard-wedge
//! barcode (digits + Enter) goes into the cart, anything else searches as you type and Enter
//! takes the first hit. Cart (with a warning on lines beyond the available stock), totals,
//! tender, receipt, "frequently bought together", and carts parked and resumed (F8 parks).

use kassa_domain::api::Product;
use kassa_domain::Money;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::components::approval::ApprovalDialog;
use crate::components::cart::{CartTable, TotalsPanel};
use crate::components::discount::DiscountEditor;
use crate::components::parked::ParkedPanel;
use crate::components::printing::NoSalePanel;
use crate::components::receipt::ReceiptView;
use crate::components::suggestions::{BoughtTogether, SearchResults};
use crate::components::tender::TenderPanel;
use crate::error::Error;
use crate::model::{
    Approval, Available, Cart, Receipt, Recommended, SplitStep, SplitView, SyncStatus,
};
use crate::services;
use crate::view::{
    card_note, changed_sku, looks_like_barcode, open_cart_vm, stock_warnings, till_notes,
};

/// Characters typed before a search starts.
const SEARCH_CHARS_MIN: usize = 2;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub status: SyncStatus,
}

/// A cashier-facing sentence for a failed scan or add.
fn scan_error(code: &str, err: &Error) -> String {
    match err.code() {
        "not_found" if looks_like_barcode(code) => format!(
            "Unknown barcode {}: no product has it. Scan again or search by name.",
            code.trim()
        ),
        "not_found" => format!("Nothing found for \"{}\".", code.trim()),
        _ => err.to_string(),
    }
}

/// The selling screen's state, one handle per piece.
#[derive(Clone)]
struct Sell {
    cart: UseStateHandle<Option<Cart>>,
    query: UseStateHandle<String>,
    results: UseStateHandle<Vec<Product>>,
    error: UseStateHandle<Option<String>>,
    receipt: UseStateHandle<Option<Receipt>>,
    together: UseStateHandle<Vec<Recommended>>,
    busy: UseStateHandle<bool>,
    search_seq: std::rc::Rc<std::cell::RefCell<u64>>,
    parked: UseStateHandle<Vec<Cart>>,
    levels: UseStateHandle<Vec<Available>>,
    /// The line whose discount is being typed (by SKU).
    discount_for: UseStateHandle<Option<String>>,
    /// A discount waiting for a manager's approval.
    needs_approval: UseStateHandle<Option<PendingDiscount>>,
    /// A payment waiting for a manager's approval (offline, past the till's stock lease).
    payment_needs_approval: UseStateHandle<Option<PendingPayment>>,
    /// The sale being paid in parts (split tender), if it is.
    split: UseStateHandle<Option<SplitView>>,
    /// The store's cash rounding increment in minor units (0: none).
    cash_rounding: UseStateHandle<i64>,
}

/// A payment the register refused without a manager's approval, to retry once approved.
#[derive(Clone, PartialEq)]
struct PendingPayment {
    /// Cash with what was handed over, or card (`None`).
    cash: Option<Money>,
    what: String,
}

/// A discount the register refused without a manager's approval.
#[derive(Clone, PartialEq)]
struct PendingDiscount {
    sku: String,
    amount: Money,
    /// The register's sentence: what needs approving.
    what: String,
}

impl Sell {
    /// A cart answer from the shell: show it, clear the field, suggest what goes with it.
    fn took(&self, before: Option<Cart>, answer: Result<Cart, Error>, typed: &str) {
        match answer {
            Ok(cart) => {
                let before = before.map(|c| c.lines).unwrap_or_default();
                if let Some(sku) = changed_sku(&before, &cart.lines) {
                    let together = self.together.clone();
                    spawn_local(async move {
                        together.set(
                            services::catalog::bought_together(&sku)
                                .await
                                .unwrap_or_default(),
                        );
                    });
                }
                self.cart.set(Some(cart));
                self.error.set(None);
            }
            Err(err) => self.error.set(Some(scan_error(typed, &err))),
        }
    }

    fn add(&self, sku: String) {
        self.results.set(Vec::new());
        let this = self.clone();
        let before = (*self.cart).clone();
        self.receipt.set(None);
        spawn_local(async move {
            let answer = services::sale::add_sku(&sku).await;
            this.took(before, answer, &sku);
        });
    }

    fn submit(&self, typed: String) {
        if typed.trim().is_empty() {
            if self.receipt.is_some() {
                self.new_sale();
            }
            return;
        }
        let this = self.clone();
        let before = (*self.cart).clone();
        self.receipt.set(None);
        if looks_like_barcode(&typed) {
            spawn_local(async move {
                let answer = services::sale::scan(&typed).await;
                this.took(before, answer, &typed);
            });
        } else if let Some(first) = self.results.first() {
            self.add(first.sku.to_string());
        } else {
            spawn_local(async move {
                let hits = services::catalog::search(&typed).await;
                match hits.as_deref().map(<[Product]>::first) {
                    Ok(Some(first)) => this.add(first.sku.to_string()),
                    Ok(None) => this
                        .error
                        .set(Some(format!("Nothing found for \"{typed}\"."))),
                    Err(e) => this.error.set(Some(e.to_string())),
                }
            });
        }
    }

    fn search(&self, typed: String) {
        self.query.set(typed.clone());
        let seq = *self.search_seq.borrow() + 1;
        *self.search_seq.borrow_mut() = seq;
        if typed.trim().chars().count() < SEARCH_CHARS_MIN || looks_like_barcode(&typed) {
            self.results.set(Vec::new());
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            let hits = services::catalog::search(&typed).await.unwrap_or_default();
            if *this.search_seq.borrow() == seq {
                this.results.set(hits);
            }
        });
    }

    fn set_qty(&self, sku: String, qty: u32) {
        let this = self.clone();
        spawn_local(async move {
            match services::sale::set_qty(&sku, qty).await {
                Ok(cart) => this.cart.set(Some(cart)),
                Err(e) => this.error.set(Some(e.to_string())),
            }
        });
    }

    fn paid(&self, answer: Result<Receipt, Error>) {
        match answer {
            Ok(receipt) => {
                self.receipt.set(Some(receipt));
                self.error.set(None);
                self.together.set(Vec::new());
                self.reload();
            }
            Err(e) => self.error.set(Some(e.to_string())),
        }
        self.busy.set(false);
    }

    fn pay_cash(&self, tendered: Money) {
        self.pay(Some(tendered), None);
    }

    fn pay_card(&self) {
        self.pay(None, None);
    }

    /// Pays cash (`Some(tendered)`) or card; with a manager's `approval` for a sale past the
    /// till's stock lease first. `approval_required` opens the manager's approval dialog.
    fn pay(&self, cash: Option<Money>, approval: Option<Approval>) {
        let this = self.clone();
        self.busy.set(true);
        spawn_local(async move {
            if let Some(approval) = &approval {
                if let Err(e) = services::sale::approve_beyond_lease(approval.id).await {
                    this.payment_needs_approval.set(None);
                    this.error.set(Some(e.to_string()));
                    this.busy.set(false);
                    return;
                }
            }
            let answer = match cash {
                Some(tendered) => services::sale::pay_cash(tendered).await,
                None => services::sale::pay_card().await,
            };
            match answer {
                Err(e) if e.code() == "approval_required" && approval.is_none() => {
                    this.payment_needs_approval.set(Some(PendingPayment {
                        cash,
                        what: e.to_string(),
                    }));
                    this.busy.set(false);
                }
                answer => {
                    this.payment_needs_approval.set(None);
                    this.paid(answer);
                }
            }
        });
    }

    /// A part of a split sale: cash (what was handed over) or card (its amount). The answer is
    /// the remaining due, or the receipt when the part covered it.
    fn part(&self, cash: bool, amount: Money) {
        let this = self.clone();
        self.busy.set(true);
        spawn_local(async move {
            let answer = if cash {
                services::sale::pay_part_cash(amount).await
            } else {
                services::sale::pay_part_card(amount).await
            };
            match answer {
                Ok(SplitStep::Due(split)) => {
                    this.split.set(Some(split));
                    this.error.set(None);
                    this.busy.set(false);
                }
                Ok(SplitStep::Done(receipt)) => {
                    this.split.set(None);
                    this.paid(Ok(*receipt));
                }
                Err(e) => {
                    this.error.set(Some(e.to_string()));
                    this.busy.set(false);
                    this.reload();
                }
            }
        });
    }

    /// Abandons the split sale: every part given back, the cart open again.
    fn void_split(&self) {
        let this = self.clone();
        self.busy.set(true);
        spawn_local(async move {
            match services::sale::void_split().await {
                Ok(voided) => this.error.set(Some(format!(
                    "Split voided: give back {} (card parts are refunded to the card).",
                    crate::view::format_money(&voided.paid)
                ))),
                Err(e) => this.error.set(Some(e.to_string())),
            }
            this.busy.set(false);
            this.reload();
        });
    }

    fn new_sale(&self) {
        self.receipt.set(None);
        self.error.set(None);
        self.reload();
    }

    fn reload(&self) {
        let this = self.clone();
        spawn_local(async move {
            match services::sale::cart().await {
                Ok(cart) => this.cart.set(Some(cart)),
                Err(e) => this.error.set(Some(e.to_string())),
            }
            // A split sale survives a restart: its parts come back with the cart.
            match services::sale::split().await {
                Ok(split) => this.split.set(split),
                Err(e) => this.error.set(Some(e.to_string())),
            }
            if let Ok(increment) = services::sale::cash_rounding().await {
                this.cash_rounding.set(increment);
            }
            this.reload_parked().await;
        });
    }

    async fn reload_parked(&self) {
        match services::sale::parked().await {
            Ok(list) => self.parked.set(list),
            Err(e) => self.error.set(Some(e.to_string())),
        }
    }

    /// Parks the open cart under `label` (an empty cart is not worth parking).
    fn park(&self, label: String) {
        if self.cart.as_ref().is_none_or(|c| c.lines.is_empty()) {
            self.error
                .set(Some("The cart is empty: nothing to park.".into()));
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            match services::sale::park(&label).await {
                Ok(cart) => {
                    this.cart.set(Some(cart));
                    this.together.set(Vec::new());
                    this.error.set(None);
                }
                Err(e) => this.error.set(Some(e.to_string())),
            }
            this.reload_parked().await;
        });
    }

    /// Resumes a parked cart; a non-empty open cart is parked in its place.
    fn resume(&self, id: uuid::Uuid) {
        let this = self.clone();
        self.receipt.set(None);
        spawn_local(async move {
            match services::sale::resume(id).await {
                Ok(cart) => {
                    this.cart.set(Some(cart));
                    this.error.set(None);
                }
                Err(e) => this.error.set(Some(e.to_string())),
            }
            this.reload_parked().await;
        });
    }

    /// Sets a line's discount; `approval_required` opens the manager's approval dialog.
    fn discount(&self, sku: String, amount: Money, approval: Option<Approval>) {
        let this = self.clone();
        spawn_local(async move {
            let id = approval.as_ref().map(|a| a.id);
            match services::sale::set_discount(&sku, amount, id).await {
                Ok(cart) => {
                    this.cart.set(Some(cart));
                    this.discount_for.set(None);
                    this.needs_approval.set(None);
                    this.error.set(None);
                }
                Err(e) if e.code() == "approval_required" && approval.is_none() => {
                    this.needs_approval.set(Some(PendingDiscount {
                        sku,
                        amount,
                        what: e.to_string(),
                    }));
                }
                Err(e) => {
                    this.needs_approval.set(None);
                    this.error.set(Some(e.to_string()));
                }
            }
        });
    }

    /// Reads the available stock of the open cart's lines, for the warnings.
    fn check_stock(&self) {
        let levels = self.levels.clone();
        spawn_local(async move {
            levels.set(services::sale::cart_stock().await.unwrap_or_default());
        });
    }
}

/// Gives the scan field the focus back, unless the cashier is typing in another field (a cash
/// amount, a parked cart's label).
fn keep_focus(scan: &NodeRef) {
    let typing = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element())
        .is_some_and(|e| e.tag_name().eq_ignore_ascii_case("input") && e.id() != "scan");
    if !typing {
        if let Some(input) = scan.cast::<HtmlInputElement>() {
            let _ = input.focus();
        }
    }
}

#[function_component(SellPage)]
pub fn sell_page(props: &Props) -> Html {
    let sell = Sell {
        cart: use_state(|| None),
        query: use_state(String::new),
        results: use_state(Vec::new),
        error: use_state(|| None),
        receipt: use_state(|| None),
        together: use_state(Vec::new),
        busy: use_state(|| false),
        search_seq: use_mut_ref(|| 0_u64),
        parked: use_state(Vec::new),
        levels: use_state(Vec::new),
        discount_for: use_state(|| None),
        needs_approval: use_state(|| None),
        payment_needs_approval: use_state(|| None),
        split: use_state(|| None),
        cash_rounding: use_state(|| 0),
    };
    let scan = use_node_ref();
    // Selling needs an open shift: say so at once rather than at the tender.
    let no_shift = use_state(|| false);
    {
        let sell = sell.clone();
        let no_shift = no_shift.clone();
        use_effect_with((), move |_| {
            sell.reload();
            spawn_local(async move {
                if let Ok(state) = services::shift::state().await {
                    no_shift.set(state.x_report.is_none());
                }
            });
        });
    }
    {
        let scan = scan.clone();
        use_effect(move || keep_focus(&scan));
    }
    {
        let sell = sell.clone();
        let lines = sell.cart.as_ref().map(|c| c.lines.clone());
        use_effect_with(lines, move |_| sell.check_stock());
    }

    let oninput = {
        let sell = sell.clone();
        Callback::from(move |e: InputEvent| {
            sell.search(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let onkeydown = {
        let sell = sell.clone();
        Callback::from(move |e: KeyboardEvent| {
            match e.key().as_str() {
                "Enter" => {
                    e.prevent_default();
                    // Emptied at once: a scanner types the next code right away, and a field
                    // cleared when the answer arrives would cut into it.
                    let input = e.target_unchecked_into::<HtmlInputElement>();
                    let typed = input.value();
                    input.set_value("");
                    sell.query.set(String::new());
                    sell.submit(typed);
                }
                "Escape" => sell.search(String::new()),
                "F8" => {
                    e.prevent_default();
                    sell.park(String::new());
                }
                _ => {}
            }
        })
    };
    let on_pick = {
        let sell = sell.clone();
        Callback::from(move |sku: String| sell.add(sku))
    };
    let on_qty = {
        let sell = sell.clone();
        Callback::from(move |(sku, qty): (String, u32)| sell.set_qty(sku, qty))
    };
    let on_cash = {
        let sell = sell.clone();
        Callback::from(move |tendered: Money| sell.pay_cash(tendered))
    };
    let on_card = {
        let sell = sell.clone();
        Callback::from(move |()| sell.pay_card())
    };
    let on_cash_part = {
        let sell = sell.clone();
        Callback::from(move |tendered: Money| sell.part(true, tendered))
    };
    let on_card_part = {
        let sell = sell.clone();
        Callback::from(move |amount: Money| sell.part(false, amount))
    };
    let on_void = {
        let sell = sell.clone();
        Callback::from(move |()| sell.void_split())
    };
    let on_park = {
        let sell = sell.clone();
        Callback::from(move |label: String| sell.park(label))
    };
    let on_resume = {
        let sell = sell.clone();
        Callback::from(move |id: uuid::Uuid| sell.resume(id))
    };
    let on_discount = {
        let sell = sell.clone();
        Callback::from(move |sku: String| sell.discount_for.set(Some(sku)))
    };
    let on_new_sale = {
        let sell = sell.clone();
        Callback::from(move |()| sell.new_sale())
    };

    let vm = sell.cart.as_ref().map(open_cart_vm);
    let right = match (&*sell.receipt, &vm) {
        (Some(receipt), _) => html! { <ReceiptView receipt={receipt.clone()} {on_new_sale} /> },
        (None, Some(vm)) => html! {
            <>
                <TotalsPanel vm={vm.clone()} />
                if !vm.rows.is_empty() {
                    <TenderPanel total={vm.total_money} cash_rounding={*sell.cash_rounding} enabled={!*sell.busy}
                        card_note={card_note(&props.status)} {on_cash} {on_card}
                        split={(*sell.split).clone()} {on_cash_part} {on_card_part} {on_void} />
                }
            </>
        },
        (None, None) => html! {},
    };
    html! {
        <main class="sell">
            <section class="left">
                <input id="scan" ref={scan} class="scan" autocomplete="off" spellcheck="false"
                    placeholder="Scan a barcode, or type a name, SKU or barcode…"
                    value={(*sell.query).clone()} {oninput} {onkeydown} />
                if *no_shift {
                    <p id="no-shift" class="warning banner">
                        { "No shift is open at this till: open one with a float on the Shift screen (F10)." }</p>
                }
                if let Some(message) = &*sell.error {
                    <p id="scan-error" class="error banner">{ message }</p>
                }
                if !sell.results.is_empty() {
                    <SearchResults results={(*sell.results).clone()} on_pick={on_pick.clone()} />
                }
                if let Some(vm) = &vm {
                    <CartTable vm={vm.clone()} {on_qty} on_discount={Some(on_discount)} warnings={
                        sell.cart.as_ref().map(|c| stock_warnings(&c.lines, &sell.levels)).unwrap_or_default()
                    } notes={
                        sell.cart.as_ref().map(|c| till_notes(&c.lines, &sell.levels)).unwrap_or_default()
                    } />
                }
                if let (Some(sku), Some(cart)) = ((*sell.discount_for).clone(), (*sell.cart).clone()) {
                    if let Some(line) = cart.lines.iter().find(|l| l.sku.to_string() == sku) {
                        <DiscountEditor sku={sku.clone()} name={line.name.clone()} currency={cart.totals.currency}
                            on_apply={ let sell = sell.clone(); Callback::from(move |amount| sell.discount(sku.clone(), amount, None)) }
                            on_cancel={ let sell = sell.clone(); Callback::from(move |()| sell.discount_for.set(None)) } />
                    }
                }
                if let Some(pending) = (*sell.needs_approval).clone() {
                    <ApprovalDialog what={pending.what.clone()}
                        on_approved={ let sell = sell.clone(); let p = pending.clone();
                            Callback::from(move |approval| sell.discount(p.sku.clone(), p.amount, Some(approval))) }
                        on_cancel={ let sell = sell.clone(); Callback::from(move |()| sell.needs_approval.set(None)) } />
                }
                if let Some(pending) = (*sell.payment_needs_approval).clone() {
                    <ApprovalDialog what={pending.what.clone()}
                        on_approved={ let sell = sell.clone(); let cash = pending.cash;
                            Callback::from(move |approval| sell.pay(cash, Some(approval))) }
                        on_cancel={ let sell = sell.clone(); Callback::from(move |()| sell.payment_needs_approval.set(None)) } />
                }
                <BoughtTogether items={(*sell.together).clone()} {on_pick} />
                <ParkedPanel parked={(*sell.parked).clone()}
                    can_park={vm.as_ref().is_some_and(|v| !v.rows.is_empty())} {on_park} {on_resume} />
                <NoSalePanel />
            </section>
            <aside class="right">{ right }</aside>
        </main>
    }
}
