//! The app shell: who is signed in, the always-visible status bar, and the [`Route`] to the
//! page on screen (sign-in, or one of the [`Screen`]s the signed-in role may open). The sync
//! state is polled once a second. F1… open the screens from anywhere (keyboard-first).

mod catalog;
mod conflicts;
mod refund;
mod reports;
mod sell;
mod shift;
mod shortfalls;
mod sign_in;
mod staff;
mod stock;

use gloo_timers::callback::Interval;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::components::status_bar::StatusBar;
use crate::model::{RegisterIdentity, SignedIn, SyncStatus};
use crate::nav::{allowed, screen_for_key, Screen};
use crate::services;

/// How often the status bar asks the shell for the sync state.
const STATUS_POLL_MS: u32 = 1_000;

/// The screens this build offers.
pub const OFFERED: [Screen; 9] = [
    Screen::Sell,
    Screen::Shift,
    Screen::Refund,
    Screen::Catalog,
    Screen::Stock,
    Screen::Reports,
    Screen::Conflicts,
    Screen::Staff,
    Screen::Shortfalls,
];

/// The pages of the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Before the shell has answered.
    Loading,
    SignIn,
    Screen(Screen),
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
                    Route::Screen(Screen::Sell)
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
            route.set(Route::Screen(Screen::Sell));
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
        let (route, who) = (route.clone(), who.clone());
        Callback::from(move |to: Screen| {
            if who.as_ref().is_some_and(|w| allowed(w.role, to)) {
                route.set(Route::Screen(to));
            }
        })
    };
    let onkeydown = {
        let (who, navigate) = (who.clone(), navigate.clone());
        Callback::from(move |e: KeyboardEvent| {
            if let Some(to) = who
                .as_ref()
                .and_then(|w| screen_for_key(w.role, &OFFERED, &e.key()))
            {
                e.prevent_default();
                navigate.emit(to);
            }
        })
    };

    let screen = match *route {
        Route::Screen(s) => Some(s),
        _ => None,
    };
    let page = match (*route, (*who).clone()) {
        (Route::Loading, _) => html! { <main class="loading">{ "Starting the register…" }</main> },
        (Route::SignIn, _) | (_, None) => html! {
            <sign_in::SignInPage identity={(*identity).clone()} {on_signed_in} {on_paired} />
        },
        // The core refuses a cashier's manager commands anyway; this keeps the screen away.
        (Route::Screen(s), Some(w)) if !allowed(w.role, s) => {
            html! { <sell::SellPage status={(*status).clone()} /> }
        }
        (Route::Screen(Screen::Sell), Some(_)) => {
            html! { <sell::SellPage status={(*status).clone()} /> }
        }
        (Route::Screen(Screen::Shift), Some(_)) => html! { <shift::ShiftPage /> },
        (Route::Screen(Screen::Refund), Some(_)) => html! { <refund::RefundPage /> },
        (Route::Screen(Screen::Catalog), Some(_)) => html! { <catalog::CatalogPage /> },
        (Route::Screen(Screen::Stock), Some(_)) => html! { <stock::StockPage /> },
        (Route::Screen(Screen::Reports), Some(_)) => html! { <reports::ReportsPage /> },
        (Route::Screen(Screen::Conflicts), Some(_)) => html! { <conflicts::ConflictsPage /> },
        (Route::Screen(Screen::Staff), Some(_)) => html! { <staff::StaffPage /> },
        (Route::Screen(Screen::Shortfalls), Some(_)) => html! { <shortfalls::ShortfallsPage /> },
    };
    html! {
        <div class="app" {onkeydown}>
            <StatusBar
                status={(*status).clone()}
                who={(*who).clone()}
                identity={(*identity).clone()}
                {screen}
                {navigate}
                {on_sign_out}
            />
            { page }
        </div>
    }
}
