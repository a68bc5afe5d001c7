//! Sign-in: staff username and password, or the short PIN a manager set (both work offline
//! against the register's own verifier once the person has signed in here online); before
//! that, once per till, pairing with Central (a manager's credentials, the store and this
//! till's code).

use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::model::{RegisterIdentity, SignedIn};
use crate::services;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub identity: Option<RegisterIdentity>,
    pub on_signed_in: Callback<SignedIn>,
    pub on_paired: Callback<RegisterIdentity>,
}

fn value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value())
        .unwrap_or_default()
}

#[function_component(SignInPage)]
pub fn sign_in_page(props: &Props) -> Html {
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let with_pin = use_state(|| false);
    let username = use_node_ref();
    let password = use_node_ref();
    let location = use_node_ref();
    let code = use_node_ref();

    {
        let username = username.clone();
        use_effect_with(props.identity.is_some(), move |_| {
            if let Some(input) = username.cast::<HtmlInputElement>() {
                let _ = input.focus();
            }
        });
    }

    let paired = props.identity.is_some();
    let onsubmit = {
        let (error, busy) = (error.clone(), busy.clone());
        let (username, password, location, code) = (
            username.clone(),
            password.clone(),
            location.clone(),
            code.clone(),
        );
        let (on_signed_in, on_paired) = (props.on_signed_in.clone(), props.on_paired.clone());
        let pin = *with_pin;
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (error, busy) = (error.clone(), busy.clone());
            let (user, pass) = (value(&username), value(&password));
            let (loc, till) = (value(&location), value(&code));
            let (on_signed_in, on_paired) = (on_signed_in.clone(), on_paired.clone());
            busy.set(true);
            spawn_local(async move {
                let result = if paired && pin {
                    services::session::sign_in_pin(&user, &pass)
                        .await
                        .map(|who| on_signed_in.emit(who))
                } else if paired {
                    services::session::sign_in(&user, &pass)
                        .await
                        .map(|who| on_signed_in.emit(who))
                } else {
                    services::session::pair(&user, &pass, &loc, &till)
                        .await
                        .map(|identity| on_paired.emit(identity))
                };
                error.set(result.err().map(|e| e.to_string()));
                busy.set(false);
            });
        })
    };

    let (title, hint, button) = if paired {
        (
            "Sign in",
            if *with_pin {
                "Staff username and the PIN a manager set."
            } else {
                "Staff username and password."
            },
            "Sign in",
        )
    } else {
        (
            "Pair this register",
            "Once per till: a manager signs in to register it with Kassa Central.",
            "Pair with Central",
        )
    };
    html! {
        <main class="sign-in">
            <form class="card" {onsubmit}>
                <h1>{ title }</h1>
                if paired {
                    <div class="segmented">
                        <button type="button" id="with-password" class={classes!((!*with_pin).then_some("active"))}
                            onclick={ let with_pin = with_pin.clone(); move |_| with_pin.set(false) }>{ "Password" }</button>
                        <button type="button" id="with-pin" class={classes!(with_pin.then_some("active"))}
                            onclick={ let with_pin = with_pin.clone(); move |_| with_pin.set(true) }>{ "PIN" }</button>
                    </div>
                }
                <p class="hint">{ hint }</p>
                <label>{ if paired { "Username" } else { "Manager username" } }
                    <input id="username" ref={username} autocomplete="off" />
                </label>
                <label>{ if paired && *with_pin { "PIN" } else { "Password" } }
                    <input id="password" ref={password} type="password"
                        inputmode={if paired && *with_pin { "numeric" } else { "text" }} />
                </label>
                if !paired {
                    <label>{ "Store (location code)" }
                        <input id="location" ref={location} value="STORE-1" />
                    </label>
                    <label>{ "Till code" }
                        <input id="register-code" ref={code} value="R1" />
                    </label>
                }
                if let Some(message) = &*error {
                    <p class="error" id="sign-in-error">{ message }</p>
                }
                <button id="sign-in" type="submit" class="primary" disabled={*busy}>{ button }</button>
            </form>
        </main>
    }
}
