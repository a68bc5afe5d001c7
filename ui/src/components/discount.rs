//! A line's discount, typed as an amount off the line (`1.50`); above the register's limit a
//! cashier is asked for a manager's approval (the selling screen opens the dialog).

use kassa_domain::{Currency, Money};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::forms::parse_price;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub sku: String,
    pub name: String,
    pub currency: Currency,
    pub on_apply: Callback<Money>,
    pub on_cancel: Callback<()>,
}

#[function_component(DiscountEditor)]
pub fn discount_editor(props: &Props) -> Html {
    let field = use_node_ref();
    let error = use_state(|| None::<String>);
    {
        let field = field.clone();
        use_effect_with(props.sku.clone(), move |_| {
            if let Some(input) = field.cast::<HtmlInputElement>() {
                let _ = input.focus();
            }
        });
    }
    let apply = {
        let (field, error, on_apply, currency) = (
            field.clone(),
            error.clone(),
            props.on_apply.clone(),
            props.currency,
        );
        move || {
            let typed = field
                .cast::<HtmlInputElement>()
                .map(|i| i.value())
                .unwrap_or_default();
            match parse_price(&typed, currency) {
                Ok(amount) => {
                    error.set(None);
                    on_apply.emit(amount);
                }
                Err(why) => error.set(Some(format!("Discount: {why}"))),
            }
        }
    };
    let onkeydown = {
        let (apply, on_cancel) = (apply.clone(), props.on_cancel.clone());
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Enter" => {
                e.prevent_default();
                apply();
            }
            "Escape" => on_cancel.emit(()),
            _ => {}
        })
    };
    let cancel = {
        let on_cancel = props.on_cancel.clone();
        Callback::from(move |_: MouseEvent| on_cancel.emit(()))
    };
    html! {
        <section id="discount" class="discount-editor card">
            <label>{ format!("Discount on {} ({} off the line)", props.name, props.currency.code()) }
                <input id="discount-amount" ref={field} inputmode="decimal" placeholder="1.50" {onkeydown} /></label>
            if let Some(e) = &*error { <p class="error">{ e }</p> }
            <div class="actions">
                <button type="button" onclick={cancel}>{ "Cancel" }</button>
                <button id="discount-apply" class="primary" onclick={move |_| apply()}>{ "Apply" }</button>
            </div>
        </section>
    }
}
