//! The always-visible bar: store and till, online/offline with the count of sales waiting to
//! sync, who is signed in, and the way to the conflict screen for managers.

use yew::prelude::*;

use crate::app::Route;
use crate::model::{RegisterIdentity, SignedIn, SyncStatus};
use crate::view::{format_time, sync_line};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub status: SyncStatus,
    pub who: Option<SignedIn>,
    pub identity: Option<RegisterIdentity>,
    pub route: Route,
    pub navigate: Callback<Route>,
    pub on_sign_out: Callback<()>,
}

#[function_component(StatusBar)]
pub fn status_bar(props: &Props) -> Html {
    let (class, state, waiting) = sync_line(&props.status);
    let till = props
        .identity
        .as_ref()
        .map(|i| format!("{} · {}", i.location, i.register_code))
        .unwrap_or_else(|| "not paired".to_owned());
    let title = match (&props.status.last_sync, &props.status.last_error) {
        (_, Some(err)) if !props.status.online => format!("last error: {err}"),
        (Some(at), _) => format!("last sync {}", format_time(at)),
        _ => "not synced yet".to_owned(),
    };
    let nav = |to: Route| {
        let navigate = props.navigate.clone();
        Callback::from(move |_: MouseEvent| navigate.emit(to))
    };
    let sign_out = {
        let cb = props.on_sign_out.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    html! {
        <header class="status-bar">
            <div class="brand"><span class="logo">{ "K" }</span>{ "Kassa Register" }
                <span class="till">{ till }</span></div>
            <div id="sync-indicator" class={classes!("sync", class)} {title}>
                <span class="dot"></span>
                <span class="words">{ format!("{state} · ") }
                    <span id="pending-count" class="pending">{ props.status.pending }</span>
                    { format!(" {waiting}") }</span>
            </div>
            if let Some(who) = &props.who {
                <nav>
                    if who.is_manager() || props.status.conflicts > 0 {
                        if props.route == Route::Conflicts {
                            <button id="nav-sell" onclick={nav(Route::Sell)}>{ "Sell" }</button>
                        } else {
                            <button id="nav-conflicts" class={classes!((props.status.conflicts > 0).then_some("attention"))}
                                onclick={nav(Route::Conflicts)}>
                                { format!("Conflicts ({})", props.status.conflicts) }</button>
                        }
                    }
                    <span class="who">{ format!("{} ({:?})", who.username, who.role).to_lowercase() }</span>
                    <button id="sign-out" onclick={sign_out}>{ "Sign out" }</button>
                </nav>
            }
        </header>
    }
}
