//! The receipt printer at the till: on the receipt, *Reprint* (a COPY) and where the printout
//! stands (printing, or waiting for the printer with why and *Try again*); with no printer,
//! the web view's *Print*. And *No sale*: the drawer opens with a manager's approval.

use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::components::approval::ApprovalDialog;
use crate::model::{Approval, PrinterStatus};
use crate::services;
use crate::view::print_status_text;

#[derive(Properties, PartialEq)]
pub struct ReceiptPrintingProps {
    pub receipt_no: String,
}

/// *Reprint* and the print queue's state for the receipt shown; the web view's *Print* when no
/// printer is set up.
#[function_component(ReceiptPrinting)]
pub fn receipt_printing(props: &ReceiptPrintingProps) -> Html {
    let status = use_state(|| None::<PrinterStatus>);
    let note = use_state(|| None::<String>);
    let refresh = {
        let status = status.clone();
        Callback::from(move |()| {
            let status = status.clone();
            spawn_local(async move {
                if let Ok(now) = services::printing::printer_status().await {
                    status.set(Some(now));
                }
            });
        })
    };
    {
        let refresh = refresh.clone();
        use_effect_with(props.receipt_no.clone(), move |_| {
            refresh.emit(());
            // The queue drains in the background: look again shortly.
            let again = gloo_timers::callback::Interval::new(1_500, move || refresh.emit(()));
            move || drop(again)
        });
    }
    let reprint = {
        let (no, note, refresh) = (props.receipt_no.clone(), note.clone(), refresh.clone());
        Callback::from(move |_: MouseEvent| {
            let (no, note, refresh) = (no.clone(), note.clone(), refresh.clone());
            spawn_local(async move {
                match services::printing::reprint(&no).await {
                    Ok(n) => note.set(Some(format!("COPY {n} sent to the printer"))),
                    Err(e) => note.set(Some(e.to_string())),
                }
                refresh.emit(());
            });
        })
    };
    let retry = Callback::from(|_: MouseEvent| {
        spawn_local(async {
            let _ = services::printing::retry_printing().await;
        });
    });
    let Some(status) = (*status).clone() else {
        return html! {};
    };
    if status.printer.is_none() {
        return html! {
            <button id="print-receipt" onclick={|_| { if let Some(w) = web_sys::window() { let _ = w.print(); } }}>{ "Print" }</button>
        };
    }
    html! {
        <>
            <button id="reprint-receipt" onclick={reprint}>{ "Reprint (copy)" }</button>
            <div id="print-status" class={classes!("print-status", (status.queued > 0).then_some("waiting"))}>
                { print_status_text(&status) }
                if status.queued > 0 {
                    <button id="print-retry" onclick={retry}>{ "Try again" }</button>
                }
            </div>
            if let Some(said) = &*note {
                <div id="print-note" class="notice">{ said }</div>
            }
        </>
    }
}

/// *No sale*: opens the cash drawer with a reason; a cashier needs a manager's approval at the
/// till (the register records who allowed it).
#[function_component(NoSalePanel)]
pub fn no_sale_panel() -> Html {
    let reason = use_node_ref();
    let asking = use_state(|| None::<String>);
    let said = use_state(|| None::<String>);
    let open = {
        let (reason, asking, said) = (reason.clone(), asking.clone(), said.clone());
        move |approval: Option<Approval>| {
            let (reason, asking, said) = (reason.clone(), asking.clone(), said.clone());
            spawn_local(async move {
                let why = reason
                    .cast::<HtmlInputElement>()
                    .map(|i| i.value())
                    .unwrap_or_default();
                match services::printing::no_sale(&why, approval.map(|a| a.id)).await {
                    Ok(done) => {
                        asking.set(None);
                        said.set(Some(format!(
                            "Drawer opened: no sale, allowed by {}",
                            done.approved_by
                        )));
                    }
                    Err(crate::error::Error::Shell(e)) if e.code == "approval_required" => {
                        asking.set(Some("Open the cash drawer with no sale.".into()));
                    }
                    Err(e) => {
                        asking.set(None);
                        said.set(Some(e.to_string()));
                    }
                }
            });
        }
    };
    let on_click = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open(None))
    };
    let on_approved = Callback::from(move |approval: Approval| open(Some(approval)));
    let on_cancel = {
        let asking = asking.clone();
        Callback::from(move |()| asking.set(None))
    };
    html! {
        <section id="no-sale" class="card no-sale">
            <input id="no-sale-reason" ref={reason} placeholder="Why (change, a till check)…" />
            <button id="no-sale-open" onclick={on_click}>{ "No sale: open drawer" }</button>
            if let Some(text) = &*said {
                <div id="no-sale-said" class="notice">{ text }</div>
            }
            if let Some(what) = &*asking {
                <ApprovalDialog what={what.clone()} {on_approved} {on_cancel} />
            }
        </section>
    }
}
