//! Tender: quick cash amounts, a typed amount with the change due, and card (through Central;
//! offline only under the offline card policy, and the register says why it refuses).

use kassa_domain::Money;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::view::{format_money, quick_amounts, tender, Tender};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub total: Money,
    pub enabled: bool,
    /// What to know about card now (offline: only under the offline card policy).
    pub card_note: Option<&'static str>,
    pub on_cash: Callback<Money>,
    pub on_card: Callback<()>,
}

#[function_component(TenderPanel)]
pub fn tender_panel(props: &Props) -> Html {
    let typed = use_state(String::new);
    let state = tender(&typed, &props.total);
    let oninput = {
        let typed = typed.clone();
        Callback::from(move |e: InputEvent| {
            typed.set(e.target_unchecked_into::<HtmlInputElement>().value());
        })
    };
    let pay = {
        let (on_cash, typed) = (props.on_cash.clone(), typed.clone());
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
    html! {
        <section class="tender">
            <h2>{ "Cash" }</h2>
            <div class="quick">
                { for quick_amounts(&props.total).into_iter().enumerate().map(|(i, amount)| {
                    let on_cash = props.on_cash.clone();
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
            <button id="pay-card" disabled={!props.enabled}
                onclick={ let on_card = props.on_card.clone(); move |_| on_card.emit(()) }>{ "Pay by card" }</button>
            if let Some(why) = props.card_note {
                <p id="card-note" class="blocked">{ why }</p>
            }
        </section>
    }
}
