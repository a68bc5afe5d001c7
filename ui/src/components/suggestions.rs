//! Search results as you type, and "frequently bought together" for the last item.

use kassa_domain::api::Product;
use yew::prelude::*;

use crate::model::Recommended;
use crate::view::format_money;

#[derive(Properties, PartialEq)]
pub struct ResultsProps {
    pub results: Vec<Product>,
    pub on_pick: Callback<String>,
}

#[function_component(SearchResults)]
pub fn search_results(props: &ResultsProps) -> Html {
    html! {
        <ul id="results" class="results">
            { for props.results.iter().enumerate().map(|(i, p)| {
                let on_pick = props.on_pick.clone();
                let sku = p.sku.to_string();
                html! {
                    <li class={classes!("result", (i == 0).then_some("first"))}
                        onclick={move |_| on_pick.emit(sku.clone())}>
                        <span class="name">{ &p.name }</span>
                        <span class="sku">{ p.sku.to_string() }</span>
                        <span class="price">{ format_money(&p.price) }</span>
                    </li>
                }
            }) }
        </ul>
    }
}

#[derive(Properties, PartialEq)]
pub struct TogetherProps {
    pub items: Vec<Recommended>,
    pub on_pick: Callback<String>,
}

#[function_component(BoughtTogether)]
pub fn bought_together(props: &TogetherProps) -> Html {
    if props.items.is_empty() {
        return html! {};
    }
    html! {
        <section id="bought-together" class="together">
            <h3>{ "Frequently bought together" }</h3>
            <div class="chips">
            { for props.items.iter().map(|r| {
                let on_pick = props.on_pick.clone();
                let sku = r.product.sku.to_string();
                html! { <button class="chip" tabindex="-1" onclick={move |_| on_pick.emit(sku.clone())}>
                    { format!("+ {} · {}", r.product.name, format_money(&r.product.price)) }</button> }
            }) }
            </div>
        </section>
    }
}
