//! The cart lines with quantity +/− and remove (and a warning on a line beyond the available
//! stock; offline, what is left at this till under its stock lease), and the totals with tax
//! broken down.

use std::collections::BTreeMap;

use yew::prelude::*;

use crate::view::CartVm;

#[derive(Properties, PartialEq)]
pub struct CartProps {
    pub vm: CartVm,
    /// (sku, new quantity); 0 removes the line.
    pub on_qty: Callback<(String, u32)>,
    /// Lines asking for more than is available, by SKU: what to say.
    #[prop_or_default]
    pub warnings: BTreeMap<String, String>,
    /// Offline, lines within the till's stock lease, by SKU: "3 left at this till".
    #[prop_or_default]
    pub notes: BTreeMap<String, String>,
    /// Opens the discount editor for a line (by SKU).
    #[prop_or_default]
    pub on_discount: Option<Callback<String>>,
}

#[function_component(CartTable)]
pub fn cart_table(props: &CartProps) -> Html {
    if props.vm.rows.is_empty() {
        return html! { <div id="cart" class="cart empty">{ "Scan a barcode or type to search." }</div> };
    }
    let button = |sku: &str, qty: u32, label: &'static str, class: &'static str| {
        let on_qty = props.on_qty.clone();
        let sku = sku.to_owned();
        html! { <button class={class} tabindex="-1" onclick={move |_| on_qty.emit((sku.clone(), qty))}>{ label }</button> }
    };
    html! {
        <table id="cart" class="cart">
            <thead><tr><th>{ "Item" }</th><th class="num">{ "Price" }</th><th class="qty">{ "Qty" }</th>
                <th class="num">{ "Total" }</th><th></th></tr></thead>
            <tbody>
            { for props.vm.rows.iter().map(|row| html! {
                <tr class="line" data-sku={row.sku.clone()}>
                    <td><div class="name">{ &row.name }</div><div class="sku">{ &row.sku }</div>
                        if let Some(w) = props.warnings.get(&row.sku) {
                            <div class="stock-warning">{ format!("⚠ {w}") }</div>
                        }
                        if let Some(n) = props.notes.get(&row.sku) {
                            <div class="till-note">{ n }</div>
                        }</td>
                    <td class="num">{ &row.unit_price }</td>
                    <td class="qty">
                        { button(&row.sku, row.qty.saturating_sub(1), "−", "qty-minus") }
                        <span class="qty-value">{ row.qty }</span>
                        { button(&row.sku, row.qty.saturating_add(1), "+", "qty-plus") }
                    </td>
                    <td class="num">{ &row.total }
                        if let Some(d) = &row.discount { <div class="discount">{ format!("−{d}") }</div> }</td>
                    <td class="line-actions">
                        if let Some(on_discount) = props.on_discount.clone() {
                            <button class="line-discount" tabindex="-1" title="Discount"
                                onclick={ let sku = row.sku.clone(); move |_| on_discount.emit(sku.clone()) }>{ "−%" }</button>
                        }
                        { button(&row.sku, 0, "✕", "remove") }</td>
                </tr>
            }) }
            </tbody>
        </table>
    }
}

#[derive(Properties, PartialEq)]
pub struct TotalsProps {
    pub vm: CartVm,
}

#[function_component(TotalsPanel)]
pub fn totals_panel(props: &TotalsProps) -> Html {
    let vm = &props.vm;
    html! {
        <section id="totals" class="totals">
            <div class="row"><span>{ format!("Subtotal ({} {})", vm.items, if vm.items == 1 { "item" } else { "items" }) }</span><span>{ &vm.subtotal }</span></div>
            if let Some(d) = &vm.discount {
                <div class="row"><span>{ "Discounts" }</span><span>{ format!("−{d}") }</span></div>
            }
            { for vm.taxes.iter().map(|t| html! {
                <div class="row tax"><span>{ format!("incl. {} on {}", t.label, t.net) }</span><span>{ &t.tax }</span></div>
            }) }
            <div class="row total"><span>{ "Total" }</span><span id="total">{ &vm.total }</span></div>
            if !vm.totals_agree {
                <p class="error">{ "The register's totals differ from the UI's: do not sell, call support." }</p>
            }
        </section>
    }
}
