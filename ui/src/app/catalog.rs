//! The manager's catalog screen: search the local catalog, edit a product (name, price,
//! category, barcodes, tax class, archived) or create one. Edits are queued by the register
//! (offline too) and the list below says where each stands: queued, at Central, in conflict
//! or refused.

use gloo_timers::callback::Interval;
use kassa_domain::api::Product;
use kassa_domain::{Currency, TaxClass};
use uuid::Uuid;
use wasm_bindgen_futures::spawn_local;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::forms::ProductForm;
use crate::model::EditState;
use crate::services;
use crate::view::{format_money, format_time, queue_state};

/// How often the queue's states are read again while the screen is open.
const QUEUE_POLL_MS: u32 = 1_000;

/// What the form is doing: changing a product of the catalog, or making a new one.
#[derive(Clone, PartialEq)]
struct Editing {
    product_id: Option<Uuid>,
    currency: Currency,
    form: ProductForm,
}

fn text(e: &InputEvent) -> String {
    e.target_unchecked_into::<HtmlInputElement>().value()
}

/// An `oninput` that writes the typed text into one field of the form.
fn field(
    editing: &UseStateHandle<Option<Editing>>,
    set: fn(&mut ProductForm, String),
) -> Callback<InputEvent> {
    let editing = editing.clone();
    Callback::from(move |e: InputEvent| {
        if let Some(mut now) = (*editing).clone() {
            set(&mut now.form, text(&e));
            editing.set(Some(now));
        }
    })
}

#[function_component(CatalogPage)]
pub fn catalog_page() -> Html {
    let results = use_state(Vec::<Product>::new);
    let editing = use_state(|| None::<Editing>);
    let problems = use_state(Vec::<String>::new);
    let message = use_state(|| None::<String>);
    let edits = use_state(Vec::<EditState>::new);
    let search_field = use_node_ref();

    {
        let (edits, message) = (edits.clone(), message.clone());
        use_effect_with((), move |_| {
            let load = move || {
                let (edits, message) = (edits.clone(), message.clone());
                spawn_local(async move {
                    match services::catalog::edits().await {
                        Ok(list) => edits.set(list),
                        Err(e) => message.set(Some(e.to_string())),
                    }
                });
            };
            load();
            let poll = Interval::new(QUEUE_POLL_MS, load);
            move || drop(poll)
        });
    }
    {
        let search_field = search_field.clone();
        use_effect_with((), move |_| {
            if let Some(input) = search_field.cast::<HtmlInputElement>() {
                let _ = input.focus();
            }
        });
    }

    let search_seq = use_mut_ref(|| 0_u64);
    let query = use_mut_ref(String::new);
    let oninput = {
        let (results, query) = (results.clone(), query.clone());
        Callback::from(move |e: InputEvent| {
            let (results, typed) = (results.clone(), text(&e));
            *query.borrow_mut() = typed.clone();
            // Answers can arrive out of order: only the latest search's is shown.
            let seq = *search_seq.borrow() + 1;
            *search_seq.borrow_mut() = seq;
            let search_seq = search_seq.clone();
            spawn_local(async move {
                let hits = services::catalog::catalog_search(&typed)
                    .await
                    .unwrap_or_default();
                if *search_seq.borrow() == seq {
                    results.set(hits);
                }
            });
        })
    };
    let pick = |product: &Product| {
        let (editing, problems, message) = (editing.clone(), problems.clone(), message.clone());
        let product = product.clone();
        Callback::from(move |_: MouseEvent| {
            editing.set(Some(Editing {
                product_id: Some(product.id),
                currency: product.price.currency(),
                form: ProductForm::of(&product),
            }));
            problems.set(Vec::new());
            message.set(None);
        })
    };
    let new_product = {
        let (editing, problems, message) = (editing.clone(), problems.clone(), message.clone());
        Callback::from(move |_: MouseEvent| {
            editing.set(Some(Editing {
                product_id: None,
                currency: Currency::EUR,
                form: ProductForm::new_product(),
            }));
            problems.set(Vec::new());
            message.set(None);
        })
    };
    let onsubmit = {
        let (editing, problems, message, edits) = (
            editing.clone(),
            problems.clone(),
            message.clone(),
            edits.clone(),
        );
        let (results, query) = (results.clone(), query.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(now) = (*editing).clone() else {
                return;
            };
            let input = match now.form.to_input(now.currency) {
                Ok(input) => input,
                Err(found) => return problems.set(found),
            };
            problems.set(Vec::new());
            let (editing, message, edits) = (editing.clone(), message.clone(), edits.clone());
            let (results, typed) = (results.clone(), query.borrow().clone());
            spawn_local(async move {
                let queued = match now.product_id {
                    Some(id) => services::catalog::edit(id, &input).await,
                    None => services::catalog::create(&input).await,
                };
                match queued {
                    Ok(_) => {
                        message.set(Some(format!(
                            "{} saved here and queued for Central.",
                            input.name
                        )));
                        editing.set(None);
                        if let Ok(list) = services::catalog::edits().await {
                            edits.set(list);
                        }
                        // The list shows the catalog as it is now, the edit included.
                        if let Ok(hits) = services::catalog::catalog_search(&typed).await {
                            results.set(hits);
                        }
                    }
                    Err(e) => message.set(Some(e.to_string())),
                }
            });
        })
    };
    let cancel = {
        let editing = editing.clone();
        Callback::from(move |_: MouseEvent| editing.set(None))
    };

    let form = (*editing).clone().map(|now| {
        let f = &now.form;
        let tax = {
            let editing = editing.clone();
            Callback::from(move |e: Event| {
                let value = e.target_unchecked_into::<HtmlSelectElement>().value();
                if let (Some(mut now), Ok(class)) = ((*editing).clone(), value.parse::<TaxClass>()) {
                    now.form.tax_class = class;
                    editing.set(Some(now));
                }
            })
        };
        let archived = {
            let editing = editing.clone();
            Callback::from(move |e: Event| {
                if let Some(mut now) = (*editing).clone() {
                    now.form.archived = e.target_unchecked_into::<HtmlInputElement>().checked();
                    editing.set(Some(now));
                }
            })
        };
        html! {
            <form id="product-form" class="card product-form" onsubmit={onsubmit.clone()}>
                <h2>{ if now.product_id.is_some() { "Edit product" } else { "New product" } }</h2>
                <label>{ "SKU" }
                    <input id="product-sku" value={f.sku.clone()} disabled={now.product_id.is_some()}
                        oninput={field(&editing, |f, v| f.sku = v)} /></label>
                <label>{ "Name" }
                    <input id="product-name" value={f.name.clone()} oninput={field(&editing, |f, v| f.name = v)} /></label>
                <div class="pair">
                    <label>{ format!("Price ({})", now.currency.code()) }
                        <input id="product-price" inputmode="decimal" value={f.price.clone()}
                            oninput={field(&editing, |f, v| f.price = v)} /></label>
                    <label>{ "Tax class" }
                        <select id="product-tax" onchange={tax}>
                            { for TaxClass::ALL.iter().map(|c| html! {
                                <option value={c.as_str()} selected={*c == f.tax_class}>{ c.as_str() }</option>
                            }) }
                        </select></label>
                </div>
                <label>{ "Category" }
                    <input id="product-category" value={f.category.clone()} oninput={field(&editing, |f, v| f.category = v)} /></label>
                <label>{ "Barcodes (comma-separated)" }
                    <input id="product-barcodes" value={f.barcodes.clone()} oninput={field(&editing, |f, v| f.barcodes = v)} /></label>
                <label class="check"><input id="product-archived" type="checkbox" checked={f.archived} onchange={archived} />
                    { "Archived (no longer sold)" }</label>
                if !problems.is_empty() {
                    <ul id="product-problems" class="error">{ for problems.iter().map(|p| html! { <li>{ p }</li> }) }</ul>
                }
                <div class="actions">
                    <button type="button" onclick={cancel.clone()}>{ "Cancel" }</button>
                    <button id="product-save" type="submit" class="primary">{ "Save" }</button>
                </div>
            </form>
        }
    });

    html! {
        <main class="catalog manager">
            <section class="left">
                <div class="toolbar">
                    <input id="catalog-search" ref={search_field} class="scan" autocomplete="off"
                        placeholder="Search the catalog: name, SKU, barcode…" {oninput} />
                    <button id="new-product" onclick={new_product}>{ "+ New product" }</button>
                </div>
                if let Some(m) = &*message { <p id="catalog-message" class="notice">{ m }</p> }
                if results.is_empty() {
                    <p class="empty">{ "Type to search the local catalog; click a product to edit it." }</p>
                } else {
                    <table id="catalog-results" class="list">
                        <thead><tr><th>{ "Product" }</th><th>{ "Category" }</th><th>{ "Tax" }</th><th class="num">{ "Price" }</th><th></th></tr></thead>
                        <tbody>
                        { for results.iter().map(|p| html! {
                            <tr class="product" data-sku={p.sku.to_string()} onclick={pick(p)}>
                                <td><div class="name">{ &p.name }</div><div class="sku">{ p.sku.to_string() }</div></td>
                                <td>{ &p.category }</td><td>{ p.tax_class.as_str() }</td>
                                <td class="num">{ format_money(&p.price) }</td>
                                <td class="num"><button class="edit-product">{ "Edit" }</button></td>
                            </tr>
                        }) }
                        </tbody>
                    </table>
                }
                <h2>{ "Edits made at this register" }</h2>
                if edits.is_empty() {
                    <p class="empty">{ "No edits yet." }</p>
                } else {
                    <table id="edit-queue" class="list">
                        <thead><tr><th>{ "Product" }</th><th>{ "State" }</th><th>{ "Changed" }</th></tr></thead>
                        <tbody>
                        { for edits.iter().map(|edit| {
                            let (class, words) = queue_state(&edit.status);
                            html! {
                                <tr class="edit" data-sku={edit.sku.clone()} data-status={edit.status.clone()}>
                                    <td><div class="name">{ &edit.name }</div><div class="sku">{ &edit.sku }</div></td>
                                    <td><span class={classes!("state", class)}>{ words }</span>
                                        if let Some(e) = &edit.last_error { <div class="sku">{ e }</div> }</td>
                                    <td>{ format_time(&edit.updated_at) }</td>
                                </tr>
                            }
                        }) }
                        </tbody>
                    </table>
                }
            </section>
            <aside class="right">{ form.unwrap_or_else(|| html! {
                <div class="card hint">{ "Pick a product to edit it, or make a new one. Changes show at this register at once and reach Central when it answers; a clash with a change made elsewhere goes to Conflicts." }</div>
            }) }</aside>
        </main>
    }
}
