//! Parked carts: park the open one under a label (a customer who went to fetch something),
//! and resume any of them; the list says each one's items and total.

use uuid::Uuid;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::model::Cart;
use crate::view::parked_rows;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub parked: Vec<Cart>,
    /// Is there an open cart with lines to park?
    pub can_park: bool,
    pub on_park: Callback<String>,
    pub on_resume: Callback<Uuid>,
}

#[function_component(ParkedPanel)]
pub fn parked_panel(props: &Props) -> Html {
    let label = use_node_ref();
    let park = {
        let (label, on_park) = (label.clone(), props.on_park.clone());
        move || {
            if let Some(input) = label.cast::<HtmlInputElement>() {
                on_park.emit(input.value());
                input.set_value("");
            }
        }
    };
    let onkeydown = {
        let park = park.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" {
                e.prevent_default();
                park();
            }
        })
    };
    let rows = parked_rows(&props.parked);
    html! {
        <section id="parked" class="parked">
            <div class="park-bar">
                <input id="park-label" ref={label} placeholder="Label (optional): name, table…"
                    autocomplete="off" {onkeydown} disabled={!props.can_park} />
                <button id="park" tabindex="-1" disabled={!props.can_park} onclick={move |_| park()}>{ "Park cart (F8)" }</button>
            </div>
            if !rows.is_empty() {
                <h3>{ format!("Parked carts ({})", rows.len()) }</h3>
                <ul class="parked-list">
                { for rows.into_iter().map(|row| {
                    let on_resume = props.on_resume.clone();
                    let id = row.id;
                    html! {
                        <li class="parked-cart" data-id={id.to_string()}>
                            <span class="label">{ row.label }</span>
                            <span class="items">{ format!("{} {}", row.items, if row.items == 1 { "item" } else { "items" }) }</span>
                            <span class="total">{ row.total }</span>
                            <button class="resume" tabindex="-1" onclick={move |_| on_resume.emit(id)}>{ "Resume" }</button>
                        </li>
                    }
                }) }
                </ul>
            }
        </section>
    }
}
