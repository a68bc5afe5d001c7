//! The manager's sales report of this register, from its own store (so it works offline):
//! sales, the refunds given here and what is left (gross, refunds, net) in all, by payment
//! method and per day, and tax by class.

use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::model::SalesReport;
use crate::services;
use crate::view::{format_money, refunds_label};

/// The windows a manager picks from, in days.
const WINDOWS_DAYS: [(u32, &str); 3] = [(1, "Today"), (7, "Last 7 days"), (31, "Last 31 days")];

#[function_component(ReportsPage)]
pub fn reports_page() -> Html {
    let days = use_state(|| 1_u32);
    let report = use_state(|| None::<SalesReport>);
    let error = use_state(|| None::<String>);
    {
        let (report, error) = (report.clone(), error.clone());
        use_effect_with(*days, move |days| {
            let days = *days;
            spawn_local(async move {
                match services::reports::sales(days).await {
                    Ok(r) => {
                        report.set(Some(r));
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e.to_string())),
                }
            });
        });
    }
    let onchange = {
        let days = days.clone();
        Callback::from(move |e: Event| {
            if let Ok(n) = e
                .target_unchecked_into::<HtmlSelectElement>()
                .value()
                .parse()
            {
                days.set(n);
            }
        })
    };
    let body = report.as_ref().map(|r| {
        html! {
            <>
            <section class="figures">
                <div class="figure"><span>{ "Sales" }</span><strong id="report-sales">{ r.sales }</strong></div>
                <div class="figure"><span>{ "Gross" }</span><strong id="report-gross">{ format_money(&r.gross) }</strong></div>
                <div class="figure"><span>{ refunds_label(r.refund_count) }</span>
                    <strong id="report-refunds">{ format_money(&r.refunds) }</strong></div>
                <div class="figure"><span>{ "Net" }</span><strong id="report-net">{ format_money(&r.net) }</strong></div>
                <div class="figure"><span>{ "Tax on sales" }</span><strong>{ format_money(&r.tax) }</strong></div>
                <div class="figure"><span>{ "Discounts given" }</span><strong>{ format_money(&r.discounts) }</strong></div>
                if let Some(rounding) = &r.cash_rounding {
                    <div class="figure"><span>{ "Cash rounding" }</span><strong id="report-rounding">{ format_money(rounding) }</strong></div>
                }
                <div class="figure"><span>{ "Not yet at Central" }</span><strong>{ r.pending_sync }</strong></div>
            </section>
            <div class="report-tables">
                <table id="report-methods" class="list">
                    <thead><tr><th>{ "Payment" }</th><th class="num">{ "Sales" }</th><th class="num">{ "Gross" }</th>
                        <th class="num">{ "Refunds" }</th><th class="num">{ "Net" }</th></tr></thead>
                    <tbody>{ for r.by_method.iter().map(|m| html! {
                        <tr data-method={m.method.clone()}><td>{ &m.method }</td><td class="num">{ m.sales }</td>
                            <td class="num">{ format_money(&m.gross) }</td><td class="num refunds">{ format_money(&m.refunds) }</td>
                            <td class="num">{ format_money(&m.net) }</td></tr>
                    }) }</tbody>
                </table>
                <table id="report-taxes" class="list">
                    <thead><tr><th>{ "Tax on sales" }</th><th class="num">{ "Net" }</th><th class="num">{ "Tax" }</th><th class="num">{ "Gross" }</th></tr></thead>
                    <tbody>{ for r.taxes.iter().map(|t| html! {
                        <tr><td>{ format!("VAT {}% ({})", t.rate.normalize(), t.tax_class.as_str()) }</td>
                            <td class="num">{ format_money(&t.net) }</td><td class="num">{ format_money(&t.tax) }</td>
                            <td class="num">{ format_money(&t.gross) }</td></tr>
                    }) }</tbody>
                </table>
                <table id="report-days" class="list">
                    <thead><tr><th>{ "Day" }</th><th class="num">{ "Sales" }</th><th class="num">{ "Gross" }</th>
                        <th class="num">{ "Refunds" }</th><th class="num">{ "Net" }</th><th class="num">{ "Tax" }</th></tr></thead>
                    <tbody>{ for r.by_day.iter().map(|d| html! {
                        <tr><td>{ d.day.to_string() }</td><td class="num">{ d.sales }</td>
                            <td class="num">{ format_money(&d.gross) }</td><td class="num refunds">{ format_money(&d.refunds) }</td>
                            <td class="num">{ format_money(&d.net) }</td><td class="num">{ format_money(&d.tax) }</td></tr>
                    }) }</tbody>
                </table>
            </div>
            </>
        }
    });
    html! {
        <main class="reports manager">
            <div class="toolbar">
                <h1>{ "Sales at this register" }</h1>
                <select id="report-days-select" {onchange}>
                    { for WINDOWS_DAYS.iter().map(|(n, label)| html! {
                        <option value={n.to_string()} selected={*n == *days}>{ *label }</option>
                    }) }
                </select>
            </div>
            if let Some(e) = &*error { <p class="error banner">{ e }</p> }
            { body.unwrap_or_default() }
        </main>
    }
}
