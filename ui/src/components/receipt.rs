//! The receipt of the sale just made, its printing (reprint, or the web view's print), and
//! "New sale".

use yew::prelude::*;

use crate::components::printing::ReceiptPrinting;
use crate::model::{Receipt, ReceiptPayment, SaleMode};
use crate::view::{cart_vm, format_money, format_time};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub receipt: Receipt,
    pub on_new_sale: Callback<()>,
}

#[function_component(ReceiptView)]
pub fn receipt_view(props: &Props) -> Html {
    let r = &props.receipt;
    let vm = cart_vm(&r.lines, &r.totals);
    let on_new_sale = props.on_new_sale.clone();
    let first_card = r
        .payments
        .iter()
        .position(|t| matches!(t.payment, ReceiptPayment::Card { .. }))
        .unwrap_or(usize::MAX);
    // Only the last cash part can give change (the one that covered the due).
    let last_cash = r
        .payments
        .iter()
        .rposition(|t| matches!(t.payment, ReceiptPayment::Cash { .. }))
        .unwrap_or(usize::MAX);
    html! {
        <section id="receipt" class="receipt">
            <h2>{ "Receipt" }</h2>
            <div id="receipt-no" class="receipt-no">{ &r.receipt_no }</div>
            <div class="meta">{ format!("{} · {}", r.location, format_time(&r.completed_at)) }
                if r.mode == SaleMode::Offline { <span class="badge offline">{ "offline sale: syncs later" }</span> }
            </div>
            <table>
            { for vm.rows.iter().map(|row| html! {
                <tr><td>{ format!("{} × {}", row.qty, row.name) }</td><td class="num">{ &row.total }</td></tr>
            }) }
            { for vm.taxes.iter().map(|t| html! {
                <tr class="tax"><td>{ format!("incl. {}", t.label) }</td><td class="num">{ &t.tax }</td></tr>
            }) }
            <tr class="total"><td>{ "Total" }</td><td class="num">{ &vm.total }</td></tr>
            if let Some(rounding) = &r.cash_rounding {
                <tr class="rounding"><td>{ "Cash rounding" }</td>
                    <td id="receipt-rounding" class="num">{ format_money(rounding) }</td></tr>
                <tr class="paid"><td>{ "Paid" }</td>
                    <td class="num">{ format_money(&r.amount_paid()) }</td></tr>
            }
            // Every payment in the order taken (several for a split sale); change only from cash.
            { for r.payments.iter().enumerate().map(|(i, t)| match &t.payment {
                ReceiptPayment::Cash { tendered, change } => html! { <>
                    <tr class="cash"><td>{ "Cash" }</td><td class="num">{ format_money(tendered) }</td></tr>
                    <tr class="change"><td>{ "Change" }</td><td id={ (i == last_cash).then_some("receipt-change") } class="num">{ format_money(change) }</td></tr>
                </> },
                ReceiptPayment::Card { reference, offline } => html! { <>
                    <tr class="card"><td>{ if *offline { "Card (offline)" } else { "Card" } }</td>
                        <td class="num">{ format_money(&t.amount) }</td></tr>
                    <tr class="card-ref"><td>{ "ref" }</td>
                        <td id={ (i == first_card).then_some("receipt-card-ref") } class="num">{ reference }</td></tr>
                </> },
            }) }
            </table>
            <div class="actions">
                <ReceiptPrinting receipt_no={r.receipt_no.clone()} />
                <button id="new-sale" class="primary" onclick={move |_| on_new_sale.emit(())}>{ "New sale (Enter)" }</button>
            </div>
        </section>
    }
}
