//! Tender: quick cash amounts, a typed amount with the change due, and card (through Central;
//! offline only under the offline card policy, and the register says why it refuses). A sale
//! may be split: parts by card or cash, each taken at once, with the parts paid and the
//! remaining due shown; the cash and card buttons then pay what is still due.

use kassa_domain::Money;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::model::{ReceiptPayment, SplitView};
use crate::view::{
    cash_due as view_cash_due, cash_due_line, format_money, quick_amounts, split_part, tender,
    Tender,
};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub total: Money,
    /// The store's cash rounding increment in minor units (0: none).
    #[prop_or_default]
    pub cash_rounding: i64,
    pub enabled: bool,
    /// What to know about card now (offline: only under the offline card policy).
    pub card_note: Option<&'static str>,
    pub on_cash: Callback<Money>,
    pub on_card: Callback<()>,
    /// The sale being paid in parts, if it is.
    #[prop_or_default]
    pub split: Option<SplitView>,
    /// A cash part (what was handed over) and a card part (its amount) of a split sale.
    pub on_cash_part: Callback<Money>,
    pub on_card_part: Callback<Money>,
    /// Abandons the split sale (every part given back).
    pub on_void: Callback<()>,
}

#[function_component(TenderPanel)]
pub fn tender_panel(props: &Props) -> Html {
    let typed = use_state(String::new);
    let splitting = props.split.is_some();
    let due = props.split.as_ref().map_or(props.total, |s| s.due);
    // Cash pays the due rounded by the store's rule (a split sale's cash rounded as one); card
    // pays it exact.
    let (cash_due, rounding) = match &props.split {
        Some(s) => (s.due_in_cash.unwrap_or(s.due), s.cash_rounding),
        None => view_cash_due(&props.total, props.cash_rounding),
    };
    let state = tender(&typed, &cash_due);
    let oninput = {
        let typed = typed.clone();
        Callback::from(move |e: InputEvent| {
            typed.set(e.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    // Mid-split, cash pays what is due as the last part; otherwise the whole sale.
    let on_cash = if splitting {
        props.on_cash_part.clone()
    } else {
        props.on_cash.clone()
    };
    let pay = {
        let (on_cash, typed) = (on_cash.clone(), typed.clone());
        let state = state.clone();
        move || {
            if let Tender::Change { tendered, .. } = state {
                on_cash.emit(tendered);
                typed.set(String::new());
            }
        }
    };
    let onkeydown = {
        let pay = pay.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" {
                pay();
            }
        })
    };
    let line = match &state {
        Tender::Empty => html! {},
        Tender::Invalid(why) => html! { <p class="error">{ why }</p> },
        Tender::Short { missing } => {
            html! { <p class="short">{ format!("{} still due", format_money(missing)) }</p> }
        }
        Tender::Change { change, .. } => html! {
            <p id="change" class="change">{ "Change due " }<strong>{ format_money(change) }</strong></p>
        },
    };
    let can_pay = props.enabled && matches!(state, Tender::Change { .. });
    let on_card = {
        let (on_card, on_card_part) = (props.on_card.clone(), props.on_card_part.clone());
        Callback::from(move |_| {
            if splitting {
                on_card_part.emit(due);
            } else {
                on_card.emit(());
            }
        })
    };
    html! {
        <section class="tender">
            if let Some(split) = &props.split {
                <SplitParts split={split.clone()} enabled={props.enabled} on_void={props.on_void.clone()} />
            }
            <h2>{ if splitting { "Cash: the rest" } else { "Cash" } }</h2>
            if let Some(rounding) = rounding {
                <p id="cash-due" class="cash-due">{ cash_due_line(&cash_due, &rounding) }</p>
            }
            <div class="quick">
                { for quick_amounts(&cash_due).into_iter().enumerate().map(|(i, amount)| {
                    let on_cash = on_cash.clone();
                    html! { <button id={format!("cash-{i}")} class="quick-amount" disabled={!props.enabled}
                        onclick={move |_| on_cash.emit(amount)}>{ format_money(&amount) }</button> }
                }) }
            </div>
            <div class="typed">
                <input id="tendered" placeholder="Amount tendered" inputmode="decimal"
                    value={(*typed).clone()} {oninput} {onkeydown} disabled={!props.enabled} />
                <button id="pay-cash" class="primary" disabled={!can_pay} onclick={move |_| pay()}>{ "Pay cash" }</button>
            </div>
            { line }
            <h2>{ "Card" }</h2>
            <button id="pay-card" disabled={!props.enabled} onclick={on_card}>
                { if splitting { format!("Card: the rest ({})", format_money(&due)) } else { "Pay by card".to_owned() } }
            </button>
            if let Some(why) = props.card_note {
                <p id="card-note" class="blocked">{ why }</p>
            }
            <SplitEntry due={due} enabled={props.enabled}
                on_cash_part={props.on_cash_part.clone()} on_card_part={props.on_card_part.clone()} />
        </section>
    }
}

#[derive(Properties, PartialEq)]
struct SplitPartsProps {
    split: SplitView,
    enabled: bool,
    on_void: Callback<()>,
}

/// The parts paid so far and the remaining due, with the way out (void: parts given back).
#[function_component(SplitParts)]
fn split_parts(props: &SplitPartsProps) -> Html {
    let s = &props.split;
    let on_void = props.on_void.clone();
    html! {
        <div id="split" class="split">
            <h2>{ "Split payment" }</h2>
            <table id="split-parts">
            { for s.parts.iter().map(|p| {
                let what = match &p.tender.payment {
                    ReceiptPayment::Cash { tendered, change } if change.is_zero() =>
                        format!("Cash ({} handed over)", format_money(tendered)),
                    ReceiptPayment::Cash { .. } => "Cash".to_owned(),
                    ReceiptPayment::Card { offline: true, .. } => "Card (offline)".to_owned(),
                    ReceiptPayment::Card { .. } if p.status == "pending" =>
                        "Card: waiting for the processor".to_owned(),
                    ReceiptPayment::Card { .. } => "Card".to_owned(),
                };
                html! { <tr class={classes!("part", p.status.clone())}>
                    <td>{ format!("{}. {what}", p.part_no) }</td>
                    <td class="num">{ format_money(&p.tender.amount) }</td></tr> }
            }) }
            <tr class="paid"><td>{ "Paid" }</td><td class="num">{ format_money(&s.paid) }</td></tr>
            <tr class="due"><td>{ "Remaining due" }</td>
                <td id="split-due" class="num"><strong>{ format_money(&s.due) }</strong></td></tr>
            </table>
            <button id="void-split" class="danger" disabled={!props.enabled}
                onclick={move |_| on_void.emit(())}>{ "Void: give the parts back" }</button>
        </div>
    }
}

#[derive(Properties, PartialEq)]
struct SplitEntryProps {
    due: Money,
    enabled: bool,
    on_cash_part: Callback<Money>,
    on_card_part: Callback<Money>,
}

/// A part of the sale: its amount, then card or cash.
#[function_component(SplitEntry)]
fn split_entry(props: &SplitEntryProps) -> Html {
    let typed = use_state(String::new);
    let problem = use_state(|| None::<String>);
    let oninput = {
        let typed = typed.clone();
        Callback::from(move |e: InputEvent| {
            typed.set(e.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let take = |card: bool, emit: Callback<Money>| {
        let (typed, problem, due) = (typed.clone(), problem.clone(), props.due);
        Callback::from(move |_| match split_part(&typed, &due, card) {
            Ok(part) => {
                problem.set(None);
                typed.set(String::new());
                emit.emit(part);
            }
            Err(why) => problem.set(Some(why)),
        })
    };
    html! {
        <div class="split-entry">
            <h2>{ "Split" }</h2>
            <div class="typed">
                <input id="part-amount" placeholder="Part amount" inputmode="decimal"
                    value={(*typed).clone()} {oninput} disabled={!props.enabled} />
                <button id="part-card" disabled={!props.enabled}
                    onclick={take(true, props.on_card_part.clone())}>{ "Card part" }</button>
                <button id="part-cash" disabled={!props.enabled}
                    onclick={take(false, props.on_cash_part.clone())}>{ "Cash part" }</button>
            </div>
            if let Some(why) = &*problem {
                <p class="error">{ why }</p>
            }
        </div>
    }
}
