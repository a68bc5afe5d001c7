//! The manager's stock screen: scan a barcode or type a SKU, then receive a delivery or adjust
//! (damage, loss, a count); the movement is queued by the register (offline too), counted in
//! its stock view at once, and the list below says where each one stands.

use gloo_timers::callback::Interval;
use kassa_domain::api::StockReason;
use wasm_bindgen_futures::spawn_local;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::forms::{parse_delta, reason_of, REASONS};
use crate::model::{QueuedAdjustment, StockView};
use crate::services;
use crate::view::{format_money, queue_state, signed};

/// How often the queue's states are read again while the screen is open.
const QUEUE_POLL_MS: u32 = 1_000;

fn value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value())
        .unwrap_or_default()
}

fn load_queue(queue: UseStateHandle<Vec<QueuedAdjustment>>) {
    spawn_local(async move {
        if let Ok(list) = services::stock::queue().await {
            queue.set(list);
        }
    });
}

#[function_component(StockPage)]
pub fn stock_page() -> Html {
    let found = use_state(|| None::<StockView>);
    let reason = use_state(|| StockReason::Receiving);
    let message = use_state(|| None::<(bool, String)>);
    let queue = use_state(Vec::<QueuedAdjustment>::new);
    let (code, delta, note) = (use_node_ref(), use_node_ref(), use_node_ref());

    {
        let queue = queue.clone();
        use_effect_with((), move |_| {
            load_queue(queue.clone());
            let poll = Interval::new(QUEUE_POLL_MS, move || load_queue(queue.clone()));
            move || drop(poll)
        });
    }
    {
        let code = code.clone();
        use_effect_with((), move |_| {
            if let Some(input) = code.cast::<HtmlInputElement>() {
                let _ = input.focus();
            }
        });
    }

    let lookup = {
        let (found, message, code, delta) =
            (found.clone(), message.clone(), code.clone(), delta.clone());
        Callback::from(move |e: KeyboardEvent| {
            if e.key() != "Enter" {
                return;
            }
            e.prevent_default();
            let typed = value(&code);
            let (found, message, delta) = (found.clone(), message.clone(), delta.clone());
            spawn_local(async move {
                match services::stock::lookup(&typed).await {
                    Ok(view) => {
                        found.set(Some(view));
                        message.set(None);
                        if let Some(input) = delta.cast::<HtmlInputElement>() {
                            let _ = input.focus();
                        }
                    }
                    Err(e) => {
                        found.set(None);
                        message.set(Some((false, e.to_string())));
                    }
                }
            });
        })
    };
    let on_reason = {
        let reason = reason.clone();
        Callback::from(move |e: Event| {
            let picked = e.target_unchecked_into::<HtmlSelectElement>().value();
            if let Some(r) = reason_of(&picked) {
                reason.set(r);
            }
        })
    };
    let onsubmit = {
        let (found, reason, message, queue) = (
            found.clone(),
            reason.clone(),
            message.clone(),
            queue.clone(),
        );
        let (code, delta, note) = (code.clone(), delta.clone(), note.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(view) = (*found).clone() else {
                return message.set(Some((false, "Scan or type a product first.".into())));
            };
            let moved = match parse_delta(&value(&delta), *reason) {
                Ok(d) => d,
                Err(why) => return message.set(Some((false, why))),
            };
            let (reason, typed_note) = (*reason, value(&note));
            let (found, message, queue) = (found.clone(), message.clone(), queue.clone());
            let (code, delta, note) = (code.clone(), delta.clone(), note.clone());
            spawn_local(async move {
                let sku = view.product.sku.to_string();
                let typed_note = (!typed_note.trim().is_empty()).then_some(typed_note.as_str());
                match services::stock::adjust(&sku, moved, reason, typed_note).await {
                    Ok(_) => {
                        message.set(Some((
                            true,
                            format!(
                            "{} {} queued: counted here now, pushed to Central at the next sync.",
                            signed(moved), view.product.name
                        ),
                        )));
                        for node in [&delta, &note, &code] {
                            if let Some(input) = node.cast::<HtmlInputElement>() {
                                input.set_value("");
                            }
                        }
                        if let Some(input) = code.cast::<HtmlInputElement>() {
                            let _ = input.focus();
                        }
                        found.set(services::stock::lookup(&sku).await.ok());
                        load_queue(queue);
                    }
                    Err(e) => message.set(Some((false, e.to_string()))),
                }
            });
        })
    };

    html! {
        <main class="stock manager">
            <section class="left">
                <input id="stock-code" ref={code} class="scan" autocomplete="off"
                    placeholder="Scan a barcode or type a SKU, then Enter" onkeydown={lookup} />
                if let Some((ok, m)) = &*message {
                    <p id="stock-message" class={if *ok { "notice" } else { "error banner" }}>{ m }</p>
                }
                <h2>{ "Stock movements made at this register" }</h2>
                if queue.is_empty() {
                    <p class="empty">{ "No movements yet." }</p>
                } else {
                    <table id="stock-queue" class="list">
                        <thead><tr><th>{ "SKU" }</th><th class="num">{ "Units" }</th><th>{ "Reason" }</th>
                            <th>{ "Note" }</th><th>{ "State" }</th></tr></thead>
                        <tbody>
                        { for queue.iter().map(|q| {
                            let (class, words) = queue_state(&q.status);
                            html! {
                                <tr class="movement" data-status={q.status.clone()}>
                                    <td>{ &q.adjustment.sku }</td>
                                    <td class="num">{ signed(q.adjustment.delta) }</td>
                                    <td>{ q.adjustment.reason.replace('_', " ") }</td>
                                    <td>{ q.adjustment.note.clone().unwrap_or_default() }</td>
                                    <td><span class={classes!("state", class)}>{ words }</span>
                                        if let Some(e) = &q.last_error { <div class="sku">{ e }</div> }</td>
                                </tr>
                            }
                        }) }
                        </tbody>
                    </table>
                }
            </section>
            <aside class="right">
                <form id="stock-form" class="card stock-form" {onsubmit}>
                    if let Some(view) = &*found {
                        <h2 id="stock-product">{ &view.product.name }</h2>
                        <p class="sku">{ format!("{} · {}", view.product.sku, format_money(&view.product.price)) }</p>
                        <p class="available">{ "Available here: " }<strong id="stock-available">{
                            view.available.map_or_else(|| "not known yet".to_owned(), |n| n.to_string()) }</strong></p>
                    } else {
                        <h2>{ "Receive or adjust" }</h2>
                        <p class="hint">{ "Scan or type a product in the field on the left." }</p>
                    }
                    <label>{ "Reason" }
                        <select id="stock-reason" onchange={on_reason}>
                            { for REASONS.iter().map(|(r, label)| html! {
                                <option value={r.as_str()} selected={*r == *reason}>{ *label }</option>
                            }) }
                        </select></label>
                    <label>{ "Units (+ adds, − removes)" }
                        <input id="stock-delta" ref={delta} inputmode="numeric" placeholder="12" /></label>
                    <label>{ "Note" }
                        <input id="stock-note" ref={note} placeholder="delivery note, what happened…" /></label>
                    <button id="stock-save" type="submit" class="primary" disabled={found.is_none()}>{ "Queue movement" }</button>
                </form>
            </aside>
        </main>
    }
}
