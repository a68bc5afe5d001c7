//! The always-visible bar: store and till, online/offline with the count of sales waiting to
//! sync (click it for the sync panel: last sync, what waits, the last error, "Sync now"), the
//! screens the signed-in role may open, and who is signed in.

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::app::OFFERED;
use crate::model::{RegisterIdentity, SignedIn, SyncStatus};
use crate::nav::{screens_for, Screen};
use crate::services;
use crate::view::{format_time, read_only_notice, sync_line, sync_panel};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub status: SyncStatus,
    pub who: Option<SignedIn>,
    pub identity: Option<RegisterIdentity>,
    /// The screen on show (`None` before sign-in).
    pub screen: Option<Screen>,
    pub navigate: Callback<Screen>,
    pub on_sign_out: Callback<()>,
}

#[function_component(StatusBar)]
pub fn status_bar(props: &Props) -> Html {
    let open = use_state(|| false);
    let syncing = use_state(|| false);
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
    let toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    let sync_now = {
        let syncing = syncing.clone();
        Callback::from(move |_: MouseEvent| {
            let syncing = syncing.clone();
            syncing.set(true);
            spawn_local(async move {
                let _ = services::sync::sync_now().await;
                syncing.set(false);
            });
        })
    };
    let sign_out = {
        let cb = props.on_sign_out.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    let panel = sync_panel(&props.status);
    let nav = props.who.as_ref().map(|who| {
        screens_for(who.role, &OFFERED)
            .into_iter()
            .map(|screen| {
                let navigate = props.navigate.clone();
                let label = match screen {
                    Screen::Conflicts => format!("Conflicts ({})", props.status.conflicts),
                    other => other.label().to_owned(),
                };
                let attention = screen == Screen::Conflicts && props.status.conflicts > 0;
                let active = props.screen == Some(screen);
                html! {
                    <button id={screen.nav_id()} title={screen.key()}
                        class={classes!("tab", active.then_some("active"), attention.then_some("attention"))}
                        onclick={move |_| navigate.emit(screen)}>{ label }</button>
                }
            })
            .collect::<Html>()
    });
    html! {
        <>
        <header class="status-bar">
            <div class="brand"><span class="logo">{ "K" }</span>{ "Kassa Register" }
                <span class="till">{ till }</span></div>
            if let Some(tabs) = nav { <nav class="tabs">{ tabs }</nav> }
            <button id="sync-indicator" class={classes!("sync", class)} {title} onclick={toggle}>
                <span class="dot"></span>
                <span class="words">{ format!("{state} · ") }
                    <span id="pending-count" class="pending">{ props.status.pending }</span>
                    { format!(" {waiting}") }</span>
            </button>
            if let Some(who) = &props.who {
                <div class="session">
                    if who.offline {
                        <span id="offline-session" class="badge offline"
                            title="Signed in with this register's own check: Central was out of reach">
                            { "offline session" }</span>
                    }
                    <span class="who" title={who.role.as_str()}>{ &who.username }</span>
                    <button id="sign-out" onclick={sign_out}>{ "Sign out" }</button>
                </div>
            }
        </header>
        if let Some(notice) = read_only_notice(&props.status) {
            <div id="read-only-banner" class="banner read-only" role="status">{ notice }</div>
        }
        if *open {
            <section id="sync-panel" class="sync-panel">
                <dl>
                    <dt>{ "State" }</dt><dd id="sync-state">{ panel.state }</dd>
                    <dt>{ "Last sync" }</dt><dd id="last-sync">{ panel.last_sync }</dd>
                    <dt>{ "Waiting" }</dt><dd id="sync-waiting">{ panel.pending }</dd>
                    <dt>{ "Last error" }</dt>
                    <dd id="last-error" class={classes!(panel.last_error.is_some().then_some("error"))}>
                        { panel.last_error.unwrap_or_else(|| "none".to_owned()) }</dd>
                </dl>
                <button id="sync-now" class="primary" disabled={*syncing} onclick={sync_now}>
                    { if *syncing { "Syncing…" } else { "Sync now" } }</button>
            </section>
        }
        </>
    }
}
