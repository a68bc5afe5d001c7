//! The manager's conflict screen: an offline catalog edit Central refused (412), both versions
//! side by side field by field; the manager picks a side per differing field and the merge is
//! pushed on top of Central's version.

use std::collections::BTreeMap;

use uuid::Uuid;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::model::{Choices, Conflict, Side};
use crate::services;
use crate::view::{choices_complete, conflict_rows, display_value};

#[function_component(ConflictsPage)]
pub fn conflicts_page() -> Html {
    let conflicts = use_state(Vec::<Conflict>::new);
    let choices = use_state(BTreeMap::<Uuid, Choices>::new);
    let message = use_state(|| None::<String>);
    let reload = {
        let conflicts = conflicts.clone();
        let message = message.clone();
        Callback::from(move |()| {
            let (conflicts, message) = (conflicts.clone(), message.clone());
            spawn_local(async move {
                match services::conflicts::list().await {
                    Ok(list) => conflicts.set(list),
                    Err(e) => message.set(Some(e.to_string())),
                }
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with((), move |_| reload.emit(()));
    }

    let choose = |edit: Uuid, field: String, side: Side| {
        let choices = choices.clone();
        Callback::from(move |_: Event| {
            let mut all = (*choices).clone();
            all.entry(edit).or_default().insert(field.clone(), side);
            choices.set(all);
        })
    };
    let resolve = |conflict: &Conflict| {
        let edit = conflict.edit_id;
        let (choices, message, reload) = (choices.clone(), message.clone(), reload.clone());
        Callback::from(move |_: MouseEvent| {
            let picked = choices.get(&edit).cloned().unwrap_or_default();
            let (message, reload) = (message.clone(), reload.clone());
            spawn_local(async move {
                match services::conflicts::resolve(edit, &picked).await {
                    Ok(()) => message.set(Some(
                        "Merged: the register pushes it to Central on the next sync.".into(),
                    )),
                    Err(e) => message.set(Some(e.to_string())),
                }
                reload.emit(());
            });
        })
    };

    html! {
        <main class="conflicts">
            <h1>{ "Catalog conflicts" }</h1>
            <p class="hint">{ "These edits were made at this register while someone changed the same product at Central. \
                Pick, for each field that differs, the value to keep." }</p>
            if let Some(m) = &*message { <p id="conflict-message" class="notice">{ m }</p> }
            if conflicts.is_empty() { <p id="no-conflicts" class="empty">{ "No conflicts: every edit reached Central." }</p> }
            { for conflicts.iter().map(|conflict| {
                let picked = choices.get(&conflict.edit_id).cloned().unwrap_or_default();
                let title = conflict.fields.iter().find(|f| f.field == "name")
                    .map(|f| display_value(&f.theirs)).unwrap_or_else(|| conflict.product_id.to_string());
                let complete = choices_complete(conflict, &picked);
                html! {
                    <section class="conflict card" data-edit={conflict.edit_id.to_string()}>
                        <h2>{ title }<span class="version">{ format!("Central's version {}", conflict.theirs_version) }</span></h2>
                        <table class="diff">
                            <thead><tr><th>{ "Field" }</th><th>{ "Before the edit" }</th>
                                <th>{ "Mine (this register)" }</th><th>{ "Theirs (Central)" }</th></tr></thead>
                            <tbody>
                            { for conflict_rows(conflict).into_iter().map(|row| {
                                let name = format!("{}-{}", conflict.edit_id, row.field);
                                let side = picked.get(&row.field).copied();
                                let cell = |value: &str, s: Side, id: String| if row.differs {
                                    html! { <td class={classes!("pick", (side == Some(s)).then_some("chosen"))}>
                                        <label><input type="radio" id={id} name={name.clone()} checked={side == Some(s)}
                                            onchange={choose(conflict.edit_id, row.field.clone(), s)} />{ value.to_owned() }</label></td> }
                                } else { html! { <td class="same">{ value.to_owned() }</td> } };
                                html! {
                                    <tr class={classes!(row.differs.then_some("differs"))}>
                                        <th>{ &row.field }</th><td class="base">{ &row.base }</td>
                                        { cell(&row.mine, Side::Mine, format!("mine-{}", row.field)) }
                                        { cell(&row.theirs, Side::Theirs, format!("theirs-{}", row.field)) }
                                    </tr>
                                }
                            }) }
                            </tbody>
                        </table>
                        <button class="primary resolve" disabled={!complete} onclick={resolve(conflict)}>{ "Keep the chosen values" }</button>
                    </section>
                }
            }) }
        </main>
    }
}
