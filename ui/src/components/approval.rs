//! A manager's approval at the cashier's till: the manager types their username and PIN (or
//! password); the register checks it (at Central online, against its own verifier offline) and
//! answers with an approval id for the one action waiting.

use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::model::Approval;
use crate::services;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// What is to be approved, in a sentence (the register's own words).
    pub what: String,
    pub on_approved: Callback<Approval>,
    pub on_cancel: Callback<()>,
}

fn value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value())
        .unwrap_or_default()
}

#[function_component(ApprovalDialog)]
pub fn approval_dialog(props: &Props) -> Html {
    let (manager, secret) = (use_node_ref(), use_node_ref());
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    {
        let manager = manager.clone();
        use_effect_with((), move |_| {
            if let Some(input) = manager.cast::<HtmlInputElement>() {
                let _ = input.focus();
            }
        });
    }
    let onsubmit = {
        let (manager, secret, error, busy) =
            (manager.clone(), secret.clone(), error.clone(), busy.clone());
        let on_approved = props.on_approved.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (who, typed) = (value(&manager), value(&secret));
            let (error, busy, on_approved) = (error.clone(), busy.clone(), on_approved.clone());
            busy.set(true);
            spawn_local(async move {
                match services::session::approve(&who, &typed).await {
                    Ok(approval) => on_approved.emit(approval),
                    Err(e) => error.set(Some(e.to_string())),
                }
                busy.set(false);
            });
        })
    };
    let cancel = {
        let on_cancel = props.on_cancel.clone();
        Callback::from(move |_: MouseEvent| on_cancel.emit(()))
    };
    let onkeydown = {
        let on_cancel = props.on_cancel.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                on_cancel.emit(());
            }
        })
    };
    html! {
        <div class="modal-backdrop" {onkeydown}>
            <form id="approval" class="card modal" {onsubmit}>
                <h2>{ "Manager approval" }</h2>
                <p class="hint">{ &props.what }</p>
                <label>{ "Manager" }
                    <input id="approval-manager" ref={manager} autocomplete="off" /></label>
                <label>{ "PIN or password" }
                    <input id="approval-secret" ref={secret} type="password" /></label>
                if let Some(message) = &*error {
                    <p id="approval-error" class="error">{ message }</p>
                }
                <div class="actions">
                    <button type="button" onclick={cancel}>{ "Cancel (Esc)" }</button>
                    <button id="approval-ok" type="submit" class="primary" disabled={*busy}>{ "Approve" }</button>
                </div>
            </form>
        </div>
    }
}
