//! The manager's staff screen: set a staff member's PIN for the register's quick sign-in (a
//! manager for cashiers and themselves, an admin for anyone). Central keeps PINs, so this
//! needs it online; the form names a bad PIN or username before anything is sent, and the
//! register says when Central does not know the name or is out of reach.

use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::forms::PinForm;
use crate::services;

fn value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value())
        .unwrap_or_default()
}

fn clear(node: &NodeRef) {
    if let Some(input) = node.cast::<HtmlInputElement>() {
        input.set_value("");
    }
}

#[function_component(StaffPage)]
pub fn staff_page() -> Html {
    // (ok, lines): a notice, or the problems to fix.
    let message = use_state(|| None::<(bool, Vec<String>)>);
    let busy = use_state(|| false);
    let (username, pin, repeat) = (use_node_ref(), use_node_ref(), use_node_ref());
    {
        let username = username.clone();
        use_effect_with((), move |_| {
            if let Some(input) = username.cast::<HtmlInputElement>() {
                let _ = input.focus();
            }
        });
    }
    let onsubmit = {
        let (message, busy) = (message.clone(), busy.clone());
        let (username, pin, repeat) = (username.clone(), pin.clone(), repeat.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let form = PinForm {
                username: value(&username),
                pin: value(&pin),
                repeat: value(&repeat),
            };
            let (name, new_pin) = match form.to_request() {
                Ok(request) => request,
                Err(problems) => return message.set(Some((false, problems))),
            };
            busy.set(true);
            let (message, busy) = (message.clone(), busy.clone());
            let (pin, repeat) = (pin.clone(), repeat.clone());
            spawn_local(async move {
                let answer = services::session::set_pin(&name, &new_pin).await;
                busy.set(false);
                match answer {
                    Ok(()) => {
                        clear(&pin);
                        clear(&repeat);
                        message.set(Some((
                            true,
                            vec![format!(
                                "{name}'s PIN is set: they sign in with it on the PIN tab, here \
                                 and at every register of the store."
                            )],
                        )));
                    }
                    Err(e) => message.set(Some((false, vec![e.to_string()]))),
                }
            });
        })
    };
    html! {
        <main class="staff manager">
            <section class="left">
                <h1>{ "Staff" }</h1>
                <p class="hint">{ "A PIN lets a staff member sign in and approve at the till with 4 to 8 \
                    digits instead of their password. A manager sets PINs for cashiers and for \
                    themselves; an admin for anyone. Central keeps the PIN, so this needs the \
                    register online." }</p>
                if let Some((ok, lines)) = &*message {
                    <div id="pin-message" class={if *ok { "notice" } else { "error banner" }}>
                        { for lines.iter().map(|l| html! { <p>{ l }</p> }) }
                    </div>
                }
            </section>
            <aside class="right">
                <form id="pin-form" class="card pin-form" {onsubmit}>
                    <h2>{ "Set a PIN" }</h2>
                    <label>{ "Username" }
                        <input id="pin-username" ref={username} autocomplete="off" placeholder="cashier" /></label>
                    <label>{ "New PIN" }
                        <input id="pin-new" ref={pin} type="password" inputmode="numeric" maxlength="8"
                            autocomplete="off" placeholder="4 to 8 digits" /></label>
                    <label>{ "The same PIN again" }
                        <input id="pin-repeat" ref={repeat} type="password" inputmode="numeric" maxlength="8"
                            autocomplete="off" /></label>
                    <button id="pin-save" type="submit" class="primary" disabled={*busy}>{ "Set PIN" }</button>
                </form>
            </aside>
        </main>
    }
}
