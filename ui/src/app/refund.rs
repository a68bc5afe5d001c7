//! Refunds at the till: scan the receipt's code (any till of the store: another till's sale is
//! found at Central, an online order by its number) or pick one of this register's recent
//! sales, type how many units of each line come back, and a manager approves at the till (PIN
//! or password); the register refunds through Central (online only, and only a sale Central
//! already has: it says so otherwise).

use std::collections::BTreeMap;

use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::components::approval::ApprovalDialog;
use crate::model::{Approval, Receipt, ReceiptPayment, SaleToReturn};
use crate::services;
use crate::view::{
    format_money, format_time, refund_done, returned_lines, sale_title, sale_to_return,
};

#[function_component(RefundPage)]
pub fn refund_page() -> Html {
    let sales = use_state(Vec::<Receipt>::new);
    let chosen = use_state(|| None::<SaleToReturn>);
    let typed = use_state(BTreeMap::<String, String>::new);
    let asking = use_state(|| None::<(Vec<(String, u32)>, String)>);
    let message = use_state(|| None::<String>);
    let done = use_state(|| None::<String>);
    {
        let (sales, message) = (sales.clone(), message.clone());
        use_effect_with((), move |_| {
            spawn_local(async move {
                match services::refunds::recent_sales().await {
                    Ok(list) => sales.set(list),
                    Err(e) => message.set(Some(e.to_string())),
                }
            });
        });
    }
    let choose = |receipt: &Receipt| {
        let (chosen, typed, message, done) =
            (chosen.clone(), typed.clone(), message.clone(), done.clone());
        let receipt = receipt.clone();
        Callback::from(move |_: MouseEvent| {
            chosen.set(Some(sale_to_return(&receipt)));
            typed.set(BTreeMap::new());
            message.set(None);
            done.set(None);
        })
    };
    let ask = {
        let (chosen, typed, asking, message) = (
            chosen.clone(),
            typed.clone(),
            asking.clone(),
            message.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let Some(receipt) = chosen.as_ref() else {
                return;
            };
            match returned_lines(receipt, &typed) {
                Ok(lines) => {
                    let units: u32 = lines.iter().map(|(_, q)| q).sum();
                    let what = format!(
                        "Refund {units} {} of receipt {}.",
                        if units == 1 { "unit" } else { "units" },
                        sale_title(receipt)
                    );
                    asking.set(Some((lines, what)));
                }
                Err(why) => message.set(Some(why)),
            }
        })
    };
    let on_approved = {
        let (chosen, asking, message, done) = (
            chosen.clone(),
            asking.clone(),
            message.clone(),
            done.clone(),
        );
        let typed = typed.clone();
        Callback::from(move |approval: Approval| {
            let Some((lines, _)) = (*asking).clone() else {
                return;
            };
            let Some(receipt) = (*chosen).clone() else {
                return;
            };
            let (asking, message, done) = (asking.clone(), message.clone(), done.clone());
            let (chosen, typed) = (chosen.clone(), typed.clone());
            spawn_local(async move {
                asking.set(None);
                match services::refunds::refund(receipt.order_id, &lines, approval.id).await {
                    Ok(refund) => {
                        message.set(None);
                        done.set(Some(refund_done(
                            &sale_title(&receipt),
                            &refund,
                            &approval.manager,
                        )));
                        // Done with this sale: a second refund needs choosing it again.
                        chosen.set(None);
                        typed.set(BTreeMap::new());
                    }
                    Err(e) => message.set(Some(e.to_string())),
                }
            });
        })
    };
    let on_cancel = {
        let asking = asking.clone();
        Callback::from(move |()| asking.set(None))
    };

    let on_scan = {
        let (chosen, typed, message, done) =
            (chosen.clone(), typed.clone(), message.clone(), done.clone());
        Callback::from(move |e: KeyboardEvent| {
            if e.key() != "Enter" {
                return;
            }
            let input = e.target_unchecked_into::<HtmlInputElement>();
            let code = input.value();
            let (chosen, typed, message, done) =
                (chosen.clone(), typed.clone(), message.clone(), done.clone());
            spawn_local(async move {
                match services::refunds::find_sale(&code).await {
                    Ok(sale) => {
                        chosen.set(Some(sale));
                        typed.set(BTreeMap::new());
                        message.set(None);
                        done.set(None);
                        input.set_value("");
                    }
                    Err(e) => message.set(Some(e.to_string())),
                }
            });
        })
    };

    let detail = chosen.as_ref().map(|r| html! {
        <section id="refund-sale" class="card refund-sale">
            <h2>{ sale_title(r) }</h2>
            <p class="hint">{ format!("{} · {} · {}", r.location, format_time(&r.completed_at), format_money(&r.total)) }</p>
            <table class="list">
                <thead><tr><th>{ "Item" }</th><th class="num">{ "Sold" }</th><th class="num">{ "Back" }</th></tr></thead>
                <tbody>
                { for r.lines.iter().map(|line| {
                    let sku = line.sku.to_string();
                    let typed_now = typed.get(&sku).cloned().unwrap_or_default();
                    let oninput = {
                        let (typed, sku) = (typed.clone(), sku.clone());
                        Callback::from(move |e: InputEvent| {
                            let mut all = (*typed).clone();
                            all.insert(sku.clone(), e.target_unchecked_into::<HtmlInputElement>().value());
                            typed.set(all);
                        })
                    };
                    html! {
                        <tr data-sku={sku.clone()}>
                            <td><div class="name">{ &line.name }</div><div class="sku">{ &sku }</div></td>
                            <td class="num">{ if line.returned > 0 { format!("{} ({} back)", line.qty, line.returned) } else { line.qty.to_string() } }</td>
                            <td class="num"><input class="returned" inputmode="numeric" placeholder="0"
                                value={typed_now} {oninput} /></td>
                        </tr>
                    }
                }) }
                </tbody>
            </table>
            <button id="refund-ask" class="primary" onclick={ask.clone()}>{ "Refund with a manager's approval" }</button>
        </section>
    });
    html! {
        <main class="refund manager">
            <section class="left">
                <h1>{ "Refund" }</h1>
                <input id="refund-scan" class="scan" placeholder="Scan the receipt's code, or type its number"
                    onkeydown={on_scan} />
                if let Some(m) = &*message {
                    <p id="refund-message" class="error banner">{ m }</p>
                }
                if let Some(said) = &*done {
                    <p id="refund-done" class="notice">{ said }</p>
                }
                if sales.is_empty() {
                    <p class="empty">{ "No sales at this register yet." }</p>
                } else {
                    <table id="recent-sales" class="list">
                        <thead><tr><th>{ "Receipt" }</th><th>{ "When" }</th><th>{ "Paid" }</th>
                            <th class="num">{ "Total" }</th><th></th></tr></thead>
                        <tbody>
                        { for sales.iter().map(|r| {
                            let paid = if r.is_split() {
                                "split"
                            } else {
                                match r.payment() {
                                    Some(ReceiptPayment::Card { .. }) => "card",
                                    _ => "cash",
                                }
                            };
                            html! {
                                <tr class="sale" data-receipt={r.receipt_no.clone()}>
                                    <td>{ &r.receipt_no }</td><td>{ format_time(&r.completed_at) }</td>
                                    <td>{ paid }</td><td class="num">{ format_money(&r.totals.total) }</td>
                                    <td class="num"><button class="choose-sale" onclick={choose(r)}>{ "Choose" }</button></td>
                                </tr>
                            }
                        }) }
                        </tbody>
                    </table>
                }
            </section>
            <aside class="right">{ detail.unwrap_or_else(|| html! {
                <div class="card hint">{ "Scan the code on the customer's receipt (from any till of this store, or an online order's number), or choose one of this till's sales." }</div>
            }) }</aside>
            if let Some((_, what)) = &*asking {
                <ApprovalDialog what={what.clone()} {on_approved} {on_cancel} />
            }
        </main>
    }
}
