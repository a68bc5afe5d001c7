//! The screens: pairing (once per till), sign-in, and the selling screen with its scan field,
//! cart, totals, cash tender and receipt, under the online/offline indicator.

use serde::Serialize;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::services::{call, NoArgs};
use crate::view::{self, CartView, Receipt, SyncStatus, Who};

/// How often the indicator asks the shell for the sync state.
const STATUS_POLL_MS: u32 = 1500;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Code {
    code: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tendered {
    tendered: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pairing {
    manager: String,
    password: String,
    location: String,
    code: String,
}

fn input_value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value())
        .unwrap_or_default()
}

fn clear(node: &NodeRef) {
    if let Some(input) = node.cast::<HtmlInputElement>() {
        input.set_value("");
        let _ = input.focus();
    }
}

#[function_component(App)]
pub fn app() -> Html {
    let who = use_state(|| None::<Who>);
    let status = use_state(SyncStatus::default);
    {
        let who = who.clone();
        use_effect_with((), move |_| {
            spawn_local(async move {
                if let Ok(w) = call::<Who>("identity", &NoArgs {}).await {
                    who.set(Some(w));
                }
            });
        });
    }
    {
        let status = status.clone();
        use_effect_with((), move |_| {
            spawn_local(async move {
                loop {
                    if let Ok(s) = call::<SyncStatus>("sync_status", &NoArgs {}).await {
                        status.set(s);
                    }
                    gloo_timers::future::TimeoutFuture::new(STATUS_POLL_MS).await;
                }
            });
        });
    }
    let on_who = {
        let who = who.clone();
        Callback::from(move |w: Who| who.set(Some(w)))
    };
    let screen = match (*who).clone() {
        None => html! { <p>{ "Starting…" }</p> },
        Some(w) if !w.paired => html! { <PairScreen on_done={on_who} /> },
        Some(w) if w.signed_in.is_none() => html! { <SignInScreen on_done={on_who} /> },
        Some(_) => html! { <SellScreen /> },
    };
    let class = if status.online {
        "status online"
    } else {
        "status offline"
    };
    html! {
        <main>
            <header>
                <h1>{ "Kassa" }</h1>
                <span id="sync-status" class={class}>{ view::status_line(&status) }</span>
            </header>
            { screen }
        </main>
    }
}

#[derive(Properties, PartialEq)]
struct DoneProps {
    on_done: Callback<Who>,
}

#[function_component(PairScreen)]
fn pair_screen(props: &DoneProps) -> Html {
    let (manager, password, location, code) = (
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
    );
    let error = use_state(|| None::<String>);
    let submit = {
        let (manager, password, location, code) = (
            manager.clone(),
            password.clone(),
            location.clone(),
            code.clone(),
        );
        let (error, on_done) = (error.clone(), props.on_done.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let args = Pairing {
                manager: input_value(&manager),
                password: input_value(&password),
                location: input_value(&location),
                code: input_value(&code),
            };
            let (error, on_done) = (error.clone(), on_done.clone());
            spawn_local(async move {
                match call::<()>("pair", &args).await {
                    Ok(()) => reload_who(on_done).await,
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    html! {
        <form class="card" onsubmit={submit}>
            <h2>{ "Pair this register with Central" }</h2>
            <input ref={manager} placeholder="manager username" />
            <input ref={password} type="password" placeholder="password" />
            <input ref={location} placeholder="location (STORE-1)" />
            <input ref={code} placeholder="register code (R1)" />
            <button type="submit">{ "Pair" }</button>
            { error_line(&error) }
        </form>
    }
}

async fn reload_who(on_done: Callback<Who>) {
    if let Ok(w) = call::<Who>("identity", &NoArgs {}).await {
        on_done.emit(w);
    }
}

fn error_line(error: &Option<String>) -> Html {
    match error {
        Some(e) => html! { <p class="error" id="error">{ e.clone() }</p> },
        None => html! {},
    }
}

#[function_component(SignInScreen)]
fn sign_in_screen(props: &DoneProps) -> Html {
    let (username, password) = (use_node_ref(), use_node_ref());
    let error = use_state(|| None::<String>);
    let submit = {
        let (username, password) = (username.clone(), password.clone());
        let (error, on_done) = (error.clone(), props.on_done.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let args = Credentials {
                username: input_value(&username),
                password: input_value(&password),
            };
            let (error, on_done) = (error.clone(), on_done.clone());
            spawn_local(async move {
                match call::<serde_json::Value>("sign_in", &args).await {
                    Ok(_) => reload_who(on_done).await,
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    html! {
        <form class="card" onsubmit={submit}>
            <h2>{ "Sign in" }</h2>
            <input id="username" ref={username} placeholder="username" />
            <input id="password" ref={password} type="password" placeholder="password" />
            <button id="sign-in" type="submit">{ "Sign in" }</button>
            { error_line(&error) }
        </form>
    }
}

#[function_component(SellScreen)]
fn sell_screen() -> Html {
    let cart = use_state(|| None::<CartView>);
    let receipt = use_state(|| None::<Receipt>);
    let error = use_state(|| None::<String>);
    let (scan_ref, tender_ref) = (use_node_ref(), use_node_ref());
    {
        let cart = cart.clone();
        use_effect_with((), move |_| {
            spawn_local(async move {
                if let Ok(c) = call::<CartView>("cart", &NoArgs {}).await {
                    cart.set(Some(c));
                }
            });
        });
    }
    let on_scan = {
        let (scan_ref, cart, error, receipt) = (
            scan_ref.clone(),
            cart.clone(),
            error.clone(),
            receipt.clone(),
        );
        Callback::from(move |e: KeyboardEvent| {
            if e.key() != "Enter" {
                return;
            }
            let code = input_value(&scan_ref);
            clear(&scan_ref);
            let (cart, error, receipt) = (cart.clone(), error.clone(), receipt.clone());
            spawn_local(async move {
                match call::<CartView>("scan", &Code { code }).await {
                    Ok(c) => {
                        cart.set(Some(c));
                        error.set(None);
                        receipt.set(None);
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    let on_pay = {
        let (tender_ref, cart, error, receipt) = (
            tender_ref.clone(),
            cart.clone(),
            error.clone(),
            receipt.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let tendered = input_value(&tender_ref);
            let (cart, error, receipt) = (cart.clone(), error.clone(), receipt.clone());
            spawn_local(async move {
                match call::<Receipt>("pay_cash", &Tendered { tendered }).await {
                    Ok(r) => {
                        receipt.set(Some(r));
                        error.set(None);
                        if let Ok(c) = call::<CartView>("cart", &NoArgs {}).await {
                            cart.set(Some(c));
                        }
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
        })
    };
    html! {
        <section class="sell">
            <input id="scan" ref={scan_ref} autofocus=true placeholder="Scan or type a barcode, Enter"
                onkeydown={on_scan} />
            { error_line(&error) }
            { cart_table(cart.as_ref()) }
            <div class="tender">
                <input id="tendered" ref={tender_ref} placeholder="cash tendered, e.g. 20.00" />
                <button id="pay-cash" onclick={on_pay}>{ "Pay cash" }</button>
            </div>
            { receipt_view(receipt.as_ref()) }
        </section>
    }
}

fn cart_table(cart: Option<&CartView>) -> Html {
    let Some(cart) = cart else {
        return html! {};
    };
    let rows = cart.lines.iter().map(|line| {
        let (qty, name, total) = view::line_row(line, &cart.totals);
        html! { <tr><td>{ qty }</td><td>{ name }</td><td class="num">{ total }</td></tr> }
    });
    html! {
        <table id="cart">
            { for rows }
            { for view::tax_rows(&cart.totals).into_iter().map(|t| html! { <tr class="tax"><td colspan="3">{ t }</td></tr> }) }
            <tr class="total"><td colspan="2">{ "Total" }</td><td id="total" class="num">{ view::money(&cart.totals.total) }</td></tr>
        </table>
    }
}

fn receipt_view(receipt: Option<&Receipt>) -> Html {
    let Some(r) = receipt else {
        return html! {};
    };
    html! {
        <div id="receipt" class="receipt">
            <h3>{ format!("Receipt {}", r.receipt_no) }</h3>
            <p>{ format!("Total {}", view::money(&r.totals.total)) }</p>
            <p>{ format!("Cash {}  Change {}", view::money(&r.tendered), view::money(&r.change)) }</p>
            <p class="mode">{ format!("Sold {}", r.mode) }</p>
        </div>
    }
}
