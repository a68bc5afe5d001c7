//! The app shell: who is signed in, the always-visible status bar, and the [`Route`] to the
//! page on screen (sign-in, selling, conflicts). The sync state is polled once a second.

mod conflicts;
mod sell;
mod sign_in;

use gloo_timers::callback::Interval;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::components::status_bar::StatusBar;
use crate::model::{RegisterIdentity, SignedIn, SyncStatus};
use crate::services;

/// How often the status bar asks the shell for the sync state.
const STATUS_POLL_MS: u32 = 1_000;

/// The pages of the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Before the shell has answered.
    Loading,
    SignIn,
    Sell,
    Conflicts,
}

#[function_component(App)]
pub fn app() -> Html {
    let route = use_state(|| Route::Loading);
    let who = use_state(|| None::<SignedIn>);
    let identity = use_state(|| None::<RegisterIdentity>);
    let status = use_state(SyncStatus::default);

    {
        let (route, who, identity) = (route.clone(), who.clone(), identity.clone());
        use_effect_with((), move |_| {
            spawn_local(async move {
                identity.set(services::session::identity().await.ok().flatten());
                let signed_in = services::session::whoami().await.ok().flatten();
                route.set(if signed_in.is_some() {
                    Route::Sell
                } else {
                    Route::SignIn
                });
                who.set(signed_in);
            });
        });
    }
    {
        let status = status.clone();
        use_effect_with((), move |_| {
            let poll = Interval::new(STATUS_POLL_MS, move || {
                let status = status.clone();
                spawn_local(async move {
                    if let Ok(now) = services::sync::status().await {
                        status.set(now);
                    }
                });
            });
            move || drop(poll)
        });
    }

    let on_signed_in = {
        let (route, who) = (route.clone(), who.clone());
        Callback::from(move |signed_in: SignedIn| {
            who.set(Some(signed_in));
            route.set(Route::Sell);
        })
    };
    let on_paired = {
        let identity = identity.clone();
        Callback::from(move |paired: RegisterIdentity| identity.set(Some(paired)))
    };
    let on_sign_out = {
        let (route, who) = (route.clone(), who.clone());
        Callback::from(move |()| {
            let (route, who) = (route.clone(), who.clone());
            spawn_local(async move {
                let _ = services::session::sign_out().await;
                who.set(None);
                route.set(Route::SignIn);
            });
        })
    };
    let navigate = {
        let route = route.clone();
        Callback::from(move |to: Route| route.set(to))
    };

    let page = match (*route, (*who).clone()) {
        (Route::Loading, _) => html! { <main class="loading">{ "Starting the register…" }</main> },
        (Route::SignIn, _) | (_, None) => html! {
            <sign_in::SignInPage identity={(*identity).clone()} {on_signed_in} {on_paired} />
        },
        (Route::Sell, Some(_)) => html! { <sell::SellPage status={(*status).clone()} /> },
        (Route::Conflicts, Some(_)) => html! { <conflicts::ConflictsPage /> },
    };
    html! {
        <div class="app">
            <StatusBar
                status={(*status).clone()}
                who={(*who).clone()}
                identity={(*identity).clone()}
                route={*route}
                {navigate}
                {on_sign_out}
            />
            { page }
        </div>
    }
}
