//! The manager's shortfalls screen: offline sales that sold more than Central had left a
//! shortfall at Central. The table lists the open ones (this store's, or every location's): when,
//! which sale, which product, sold vs. taken vs. short; a note per row says how it was dealt
//! with and *Resolve* records it at Central, and the row leaves the list with a confirmation.
//! Central keeps shortfalls, so this needs the register online; the register says so otherwise.

use std::collections::BTreeMap;

use uuid::Uuid;
use wasm_bindgen_futures::spawn_local;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::model::ShortfallView;
use crate::services;
use crate::view::{shortfall_resolved, shortfall_rows, ShortfallRow};

#[function_component(ShortfallsPage)]
pub fn shortfalls_page() -> Html {
    let everywhere = use_state(|| false);
    // `None` until Central has answered.
    let open = use_state(|| None::<Vec<ShortfallView>>);
    let notes = use_state(BTreeMap::<Uuid, String>::new);
    let row_errors = use_state(BTreeMap::<Uuid, String>::new);
    // (ok, words): the last confirmation, or why the list could not be read.
    let message = use_state(|| None::<(bool, String)>);
    let busy = use_state(|| None::<Uuid>);

    let reload = {
        let (open, message, everywhere) = (open.clone(), message.clone(), everywhere.clone());
        Callback::from(move |keep_message: bool| {
            let (open, message, everywhere) = (open.clone(), message.clone(), *everywhere);
            spawn_local(async move {
                match services::shortfalls::open(everywhere).await {
                    Ok(list) => {
                        open.set(Some(list));
                        if !keep_message {
                            message.set(None);
                        }
                    }
                    Err(e) => {
                        open.set(Some(Vec::new()));
                        message.set(Some((false, e.to_string())));
                    }
                }
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with(*everywhere, move |_| reload.emit(false));
    }

    let on_where = {
        let (everywhere, open) = (everywhere.clone(), open.clone());
        Callback::from(move |e: Event| {
            let value = e.target_unchecked_into::<HtmlSelectElement>().value();
            open.set(None);
            everywhere.set(value == "everywhere");
        })
    };
    let on_note = |id: Uuid| {
        let notes = notes.clone();
        Callback::from(move |e: InputEvent| {
            let mut all = (*notes).clone();
            all.insert(id, e.target_unchecked_into::<HtmlInputElement>().value());
            notes.set(all);
        })
    };
    let resolve = {
        let (open, notes, row_errors) = (open.clone(), notes.clone(), row_errors.clone());
        let (message, busy, reload) = (message.clone(), busy.clone(), reload.clone());
        Callback::from(move |row: ShortfallRow| {
            let note = notes.get(&row.id).cloned().unwrap_or_default();
            let (open, row_errors) = (open.clone(), row_errors.clone());
            let (message, busy, reload) = (message.clone(), busy.clone(), reload.clone());
            busy.set(Some(row.id));
            spawn_local(async move {
                let answer = services::shortfalls::resolve(row.id, &note).await;
                busy.set(None);
                let mut errors = (*row_errors).clone();
                match answer {
                    Ok(resolved) => {
                        errors.remove(&row.id);
                        let left = (*open).clone().map(|list| {
                            list.into_iter()
                                .filter(|v| v.discrepancy.id != row.id)
                                .collect()
                        });
                        open.set(left);
                        message.set(Some((true, shortfall_resolved(&row, &resolved))));
                    }
                    // Someone else resolved it meanwhile: the fresh list drops it.
                    Err(e) if e.code() == "already_resolved" => {
                        message.set(Some((true, e.to_string())));
                        reload.emit(true);
                    }
                    Err(e) => {
                        errors.insert(row.id, e.to_string());
                    }
                }
                row_errors.set(errors);
            });
        })
    };

    let rows = open.as_ref().map(|list| shortfall_rows(list));
    let table = match &rows {
        None => html! { <p id="shortfalls-loading" class="empty">{ "Asking Central…" }</p> },
        Some(rows) if rows.is_empty() => html! {
            <p id="no-shortfalls" class="empty">{ "No open shortfalls: every offline sale found its stock at Central." }</p>
        },
        Some(rows) => html! {
            <table id="shortfalls" class="list">
                <thead><tr><th>{ "When" }</th><th>{ "Sale" }</th><th>{ "Product" }</th>
                    <th class="num">{ "Sold" }</th><th class="num">{ "Taken" }</th><th class="num">{ "Short" }</th>
                    <th>{ "Location" }</th><th>{ "How it was resolved" }</th></tr></thead>
                <tbody>
                { for rows.iter().map(|row| {
                    let id = row.id;
                    let submit = {
                        let (resolve, row) = (resolve.clone(), row.clone());
                        Callback::from(move |e: SubmitEvent| {
                            e.prevent_default();
                            resolve.emit(row.clone());
                        })
                    };
                    html! {
                        <tr class="shortfall" data-id={id.to_string()} data-sku={row.sku.clone()}>
                            <td>{ &row.when }</td>
                            <td class="sale">{ &row.sale }</td>
                            <td>{ &row.product }<div class="sku">{ &row.sku }</div></td>
                            <td class="num">{ &row.ordered }</td>
                            <td class="num">{ &row.taken }</td>
                            <td class="num short">{ &row.short }</td>
                            <td>{ &row.location }</td>
                            <td>
                                <form class="resolve-form" onsubmit={submit}>
                                    <input class="shortfall-note" autocomplete="off"
                                        placeholder="recounted, written off, found in the back…"
                                        value={notes.get(&id).cloned().unwrap_or_default()}
                                        oninput={on_note(id)} />
                                    <button type="submit" class="primary resolve-shortfall"
                                        disabled={*busy == Some(id)}>{ "Resolve" }</button>
                                </form>
                                if let Some(e) = row_errors.get(&id) { <p class="row-error">{ e }</p> }
                            </td>
                        </tr>
                    }
                }) }
                </tbody>
            </table>
        },
    };

    html! {
        <main class="shortfalls manager">
            <div class="toolbar">
                <h1>{ "Stock shortfalls" }</h1>
                <select id="shortfalls-where" onchange={on_where}>
                    <option value="here" selected={!*everywhere}>{ "This store" }</option>
                    <option value="everywhere" selected={*everywhere}>{ "Every location" }</option>
                </select>
            </div>
            <p class="hint">{ "Offline sales that sold more than Central had in stock. The sale stands; \
                count the shelf, correct the count on the Stock screen if needed, then say here how \
                each one was resolved. Central keeps them, so this needs the register online." }</p>
            if let Some((ok, m)) = &*message {
                <p id="shortfall-message" class={if *ok { "notice" } else { "error banner" }}>{ m }</p>
            }
            { table }
        </main>
    }
}
