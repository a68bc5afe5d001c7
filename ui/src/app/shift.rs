//! The shift at the till, keyboard-first: open with a float (a sum, or note by note), cash in
//! and out with a reason, the X report, the blind count on the denomination grid (the expected
//! cash is shown only after), the close with a manager's approval beyond the tolerance, and
//! the Z report.

use std::collections::BTreeMap;

use kassa_domain::{Currency, Money};
use wasm_bindgen_futures::spawn_local;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::components::approval::ApprovalDialog;
use crate::model::{Approval, CashCount, DenominationCount, MovementKind, ShiftState, ZReportView};
use crate::services;
use crate::view::format_money;

/// What waits for a manager's approval.
#[derive(Debug, Clone, PartialEq)]
enum Waiting {
    Movement {
        kind: MovementKind,
        amount: Money,
        reason: String,
    },
    Close,
}

fn input_value(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value())
        .unwrap_or_default()
}

/// The count on the grid: note by note, the notes left at 0 out.
fn grid_count(denominations: &[Money], counts: &BTreeMap<usize, u32>) -> CashCount {
    CashCount::Denominations {
        counts: denominations
            .iter()
            .enumerate()
            .filter_map(|(i, value)| {
                counts
                    .get(&i)
                    .filter(|c| **c > 0)
                    .map(|count| DenominationCount {
                        value: *value,
                        count: *count,
                    })
            })
            .collect(),
    }
}

#[derive(Properties, PartialEq)]
struct GridProps {
    /// Element ids are `{prefix}-{value}` (`count-50.00`).
    prefix: AttrValue,
    denominations: Vec<Money>,
    counts: BTreeMap<usize, u32>,
    on_change: Callback<(usize, u32)>,
}

/// The denomination grid: one count per note and coin, the total below.
#[function_component(DenominationGrid)]
fn denomination_grid(props: &GridProps) -> Html {
    let total = match grid_count(&props.denominations, &props.counts) {
        CashCount::Denominations { counts } => counts.iter().try_fold(
            Money::zero(
                props
                    .denominations
                    .first()
                    .map_or(Currency::EUR, Money::currency),
            ),
            |sum, c| c.value.times(c.count).and_then(|v| sum.checked_add(&v)),
        ),
        CashCount::Sum { amount } => Ok(amount),
    };
    html! {
        <div class={format!("denominations {}", props.prefix)}>
            { for props.denominations.iter().enumerate().map(|(i, value)| {
                let on_change = props.on_change.clone();
                let oninput = Callback::from(move |e: InputEvent| {
                    let typed = e.target_unchecked_into::<HtmlInputElement>().value();
                    on_change.emit((i, typed.trim().parse().unwrap_or(0)));
                });
                let id = format!("{}-{}", props.prefix, value.amount());
                let count = props.counts.get(&i).copied().unwrap_or(0);
                html! {
                    <label class="denomination">
                        <span>{ format_money(value) }</span>
                        <input id={id} type="number" min="0" inputmode="numeric"
                            value={if count == 0 { String::new() } else { count.to_string() }} {oninput} />
                    </label>
                }
            }) }
            <p class="grid-total">{ "Total " }<strong id={format!("{}-total", props.prefix)}>
                { total.map(|t| format_money(&t)).unwrap_or_default() }</strong></p>
        </div>
    }
}

#[function_component(ShiftPage)]
pub fn shift_page() -> Html {
    let state = use_state(|| None::<ShiftState>);
    let closed = use_state(|| None::<ZReportView>);
    let history = use_state(Vec::<ZReportView>::new);
    let error = use_state(|| None::<String>);
    let note = use_state(|| None::<String>);
    let waiting = use_state(|| None::<(Waiting, String)>);
    let float_counts = use_state(BTreeMap::<usize, u32>::new);
    let cash_counts = use_state(BTreeMap::<usize, u32>::new);
    let (float_sum, amount, reason, kind) = (
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
    );
    let reload = {
        let (state, history, error) = (state.clone(), history.clone(), error.clone());
        Callback::from(move |()| {
            let (state, history, error) = (state.clone(), history.clone(), error.clone());
            spawn_local(async move {
                match services::shift::state().await {
                    Ok(now) => state.set(Some(now)),
                    Err(e) => error.set(Some(e.to_string())),
                }
                if let Ok(list) = services::shift::z_reports().await {
                    history.set(list);
                }
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with((), move |_| reload.emit(()));
    }
    let Some(current) = (*state).clone() else {
        return html! { <main class="shift"><p>{ "Reading the shift…" }</p></main> };
    };
    let currency = current
        .denominations
        .first()
        .map_or(Currency::EUR, Money::currency);

    let grid_setter = |counts: UseStateHandle<BTreeMap<usize, u32>>| {
        Callback::from(move |(i, n): (usize, u32)| {
            let mut next = (*counts).clone();
            next.insert(i, n);
            counts.set(next);
        })
    };

    // What a manager's approval unblocks, run again with it.
    let run = {
        let (error, note, waiting, reload, closed) = (
            error.clone(),
            note.clone(),
            waiting.clone(),
            reload.clone(),
            closed.clone(),
        );
        let (amount, reason) = (amount.clone(), reason.clone());
        Callback::from(move |(what, approval): (Waiting, Option<Approval>)| {
            let (error, note, waiting, reload, closed) = (
                error.clone(),
                note.clone(),
                waiting.clone(),
                reload.clone(),
                closed.clone(),
            );
            let (amount, reason) = (amount.clone(), reason.clone());
            spawn_local(async move {
                let id = approval.as_ref().map(|a| a.id);
                let outcome = match &what {
                    Waiting::Movement {
                        kind,
                        amount: sum,
                        reason: why,
                    } => services::shift::movement(*kind, *sum, why, id)
                        .await
                        .map(|m| {
                            for node in [&amount, &reason] {
                                if let Some(input) = node.cast::<HtmlInputElement>() {
                                    input.set_value("");
                                }
                            }
                            format!(
                                "{} of {} recorded: {}",
                                m.kind.label(),
                                format_money(&m.amount),
                                m.reason
                            )
                        }),
                    Waiting::Close => services::shift::close(id).await.map(|z| {
                        let text = format!("Z report {} written", z.report.z_no.unwrap_or(0));
                        closed.set(Some(z));
                        text
                    }),
                };
                match outcome {
                    Ok(done) => {
                        waiting.set(None);
                        error.set(None);
                        note.set(Some(done));
                    }
                    Err(e) if e.code() == "approval_required" && approval.is_none() => {
                        waiting.set(Some((what, e.to_string())));
                    }
                    Err(e) => {
                        waiting.set(None);
                        error.set(Some(e.to_string()));
                    }
                }
                reload.emit(());
            });
        })
    };

    let open_submit = {
        let (error, note, reload, float_counts, closed) = (
            error.clone(),
            note.clone(),
            reload.clone(),
            float_counts.clone(),
            closed.clone(),
        );
        let (float_sum, denominations) = (float_sum.clone(), current.denominations.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let typed = input_value(&float_sum);
            let float = if typed.trim().is_empty() {
                grid_count(&denominations, &float_counts)
            } else {
                match Money::parse(typed.trim(), currency) {
                    Ok(amount) => CashCount::Sum { amount },
                    Err(err) => {
                        error.set(Some(format!("the float: {err}")));
                        return;
                    }
                }
            };
            let (error, note, reload, closed) =
                (error.clone(), note.clone(), reload.clone(), closed.clone());
            spawn_local(async move {
                match services::shift::open(&float).await {
                    Ok(x) => {
                        error.set(None);
                        closed.set(None);
                        note.set(Some(format!(
                            "Shift open with a float of {}",
                            format_money(&x.cash.float)
                        )));
                    }
                    Err(e) => error.set(Some(e.to_string())),
                }
                reload.emit(());
            });
        })
    };

    let movement_submit = {
        let (error, run) = (error.clone(), run.clone());
        let (amount, reason, kind) = (amount.clone(), reason.clone(), kind.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let chosen = kind
                .cast::<HtmlSelectElement>()
                .map(|s| s.value())
                .and_then(|v| MovementKind::parse(&v))
                .unwrap_or(MovementKind::PaidOut);
            match Money::parse(input_value(&amount).trim(), currency) {
                Ok(sum) => run.emit((
                    Waiting::Movement {
                        kind: chosen,
                        amount: sum,
                        reason: input_value(&reason),
                    },
                    None,
                )),
                Err(err) => error.set(Some(format!("the amount: {err}"))),
            }
        })
    };

    let count_submit = {
        let (error, note, reload, cash_counts) = (
            error.clone(),
            note.clone(),
            reload.clone(),
            cash_counts.clone(),
        );
        let denominations = current.denominations.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let counted = grid_count(&denominations, &cash_counts);
            let (error, note, reload) = (error.clone(), note.clone(), reload.clone());
            spawn_local(async move {
                match services::shift::count(&counted).await {
                    Ok(_) => {
                        error.set(None);
                        note.set(None);
                    }
                    Err(e) => error.set(Some(e.to_string())),
                }
                reload.emit(());
            });
        })
    };

    let close_submit = {
        let run = run.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            run.emit((Waiting::Close, None));
        })
    };

    let on_approved = {
        let (waiting, run) = (waiting.clone(), run.clone());
        Callback::from(move |approval: Approval| {
            if let Some((what, _)) = (*waiting).clone() {
                run.emit((what, Some(approval)));
            }
        })
    };
    let on_cancel = {
        let waiting = waiting.clone();
        Callback::from(move |()| waiting.set(None))
    };

    let body = match (&current.x_report, &current.count) {
        (None, _) => html! {
            <form id="open-shift-form" class="card" onsubmit={open_submit}>
                <h2>{ "Open the till" }</h2>
                <p class="hint">{ "Count the float note by note, or type its sum." }</p>
                <DenominationGrid prefix="float" denominations={current.denominations.clone()}
                    counts={(*float_counts).clone()} on_change={grid_setter(float_counts.clone())} />
                <label>{ "Or the sum" }<input id="float-sum" ref={float_sum} inputmode="decimal" autofocus=true /></label>
                <div class="actions">
                    <button id="open-shift" type="submit" class="primary">{ "Open shift (Enter)" }</button>
                </div>
            </form>
        },
        (Some(_), None) => html! {
            <div class="shift-columns">
                <section class="card">
                    <h2>{ "X report" }</h2>
                    <pre id="x-report" class="report-text">{ current.text.clone().unwrap_or_default() }</pre>
                </section>
                <section class="shift-actions">
                    <form id="movement-form" class="card" onsubmit={movement_submit}>
                        <h2>{ "Cash in or out" }</h2>
                        <label>{ "What" }
                            <select id="movement-kind" ref={kind}>
                                { for MovementKind::ALL.iter().map(|k| html! {
                                    <option value={k.as_str()}>{ k.label() }</option>
                                }) }
                            </select></label>
                        <label>{ "Amount" }<input id="movement-amount" ref={amount} inputmode="decimal" /></label>
                        <label>{ "Reason" }<input id="movement-reason" ref={reason} maxlength="200" /></label>
                        <div class="actions">
                            <button id="record-movement" type="submit">{ "Record (Enter)" }</button>
                        </div>
                    </form>
                    <form id="count-form" class="card" onsubmit={count_submit}>
                        <h2>{ "Close: count the drawer" }</h2>
                        <p class="hint">{ "A blind count: what the till expected shows once you have counted." }</p>
                        <DenominationGrid prefix="count" denominations={current.denominations.clone()}
                            counts={(*cash_counts).clone()} on_change={grid_setter(cash_counts.clone())} />
                        <div class="actions">
                            <button id="count-cash" type="submit" class="primary">{ "Counted" }</button>
                        </div>
                    </form>
                </section>
            </div>
        },
        (Some(_), Some(count)) => {
            let word = if count.over_short.is_negative() {
                "Short"
            } else {
                "Over"
            };
            html! {
                <form id="close-form" class="card" onsubmit={close_submit}>
                    <h2>{ "The count" }</h2>
                    <section class="figures">
                        <div class="figure"><span>{ "Counted" }</span><strong id="count-counted">{ format_money(&count.counted) }</strong></div>
                        <div class="figure"><span>{ "Expected" }</span><strong id="count-expected">{ format_money(&count.expected) }</strong></div>
                        <div class={classes!("figure", count.needs_approval.then_some("warn"))}>
                            <span>{ word }</span><strong id="count-over-short">{ format_money(&count.over_short) }</strong></div>
                    </section>
                    if count.needs_approval {
                        <p class="warning">{ format!("Beyond {} either way: a manager approves the close.", format_money(&count.tolerance)) }</p>
                    }
                    <div class="actions">
                        <button id="close-shift" type="submit" class="primary" autofocus=true>{ "Write the Z report (Enter)" }</button>
                    </div>
                </form>
            }
        }
    };
    html! {
        <main class="shift">
            <div class="toolbar"><h1>{ "Shift" }</h1></div>
            if let Some(e) = &*error { <p id="shift-error" class="error banner">{ e }</p> }
            if let Some(n) = &*note { <p id="shift-note" class="note banner">{ n }</p> }
            if let Some(z) = &*closed {
                <section class="card">
                    <h2>{ format!("Z report {}", z.report.z_no.unwrap_or(0)) }</h2>
                    <pre id="z-report" class="report-text">{ &z.text }</pre>
                    <button id="print-z-report" onclick={
                        let (error, z_no) = (error.clone(), z.report.z_no);
                        Callback::from(move |_: MouseEvent| {
                            let error = error.clone();
                            spawn_local(async move {
                                if let Err(e) = services::printing::print_shift_report(z_no).await {
                                    error.set(Some(e.to_string()));
                                }
                            });
                        })
                    }>{ "Print" }</button>
                </section>
            }
            { body }
            if !history.is_empty() {
                <section class="card z-history">
                    <h2>{ "Z reports" }</h2>
                    <table id="z-reports" class="list">
                        <thead><tr><th>{ "Z" }</th><th>{ "Day" }</th><th class="num">{ "Sales" }</th>
                            <th class="num">{ "Expected" }</th><th class="num">{ "Counted" }</th><th class="num">{ "Over/short" }</th></tr></thead>
                        <tbody>{ for history.iter().map(|z| {
                            let show = {
                                let (closed, z) = (closed.clone(), z.clone());
                                Callback::from(move |_: MouseEvent| closed.set(Some(z.clone())))
                            };
                            let r = &z.report;
                            let money = |m: Option<Money>| m.map(|m| format_money(&m)).unwrap_or_default();
                            html! {
                                <tr onclick={show}><td>{ r.z_no.unwrap_or(0) }</td><td>{ r.business_day.to_string() }</td>
                                    <td class="num">{ r.sales.sales }</td><td class="num">{ money(r.expected) }</td>
                                    <td class="num">{ money(r.counted) }</td><td class="num">{ money(r.over_short) }</td></tr>
                            }
                        }) }</tbody>
                    </table>
                </section>
            }
            if let Some((_, what)) = &*waiting {
                <ApprovalDialog what={what.clone()} {on_approved} {on_cancel} />
            }
        </main>
    }
}
