//! Kassa Register's desktop shell: a thin Tauri 2 layer over `kassa-register`. [`run`] opens
//! the register (configured from the environment, see [`config`]), pairs and signs in from the
//! environment when asked to (the demo), starts the sync engine and serves the UI's commands,
//! grouped by area in [`commands`]. All logic lives in `crates/register`.

pub mod commands;
pub mod config;
pub mod error;
mod startup;

use anyhow::Context;
use tauri::Manager;

/// Runs the app until its window closes; `--print-test` prints the printer's test page and
/// exits without a window.
pub fn run() -> anyhow::Result<()> {
    // Logs, and the register's spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _telemetry = kassa_register::telemetry::init();
    let config = config::ShellConfig::from_env()?;
    if std::env::args().skip(1).any(|a| a == "--print-test") {
        return print_test(&config);
    }
    tauri::Builder::default()
        .setup(move |app| {
            let data_dir = match &config.data_dir {
                Some(dir) => dir.clone(),
                None => app.path().app_data_dir()?,
            };
            let register = tauri::async_runtime::block_on(startup::open(&config, &data_dir))?;
            app.manage(register);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::session::identity,
            commands::session::pair,
            commands::session::whoami,
            commands::session::sign_in,
            commands::session::sign_in_pin,
            commands::session::approve,
            commands::session::set_pin,
            commands::session::sign_out,
            commands::sale::cart,
            commands::sale::scan,
            commands::sale::add_sku,
            commands::sale::set_qty,
            commands::sale::set_discount,
            commands::sale::park,
            commands::sale::resume,
            commands::sale::parked,
            commands::sale::cart_stock,
            commands::sale::pay_cash,
            commands::sale::pay_card,
            commands::sale::split,
            commands::sale::cash_rounding,
            commands::sale::pay_part_cash,
            commands::sale::pay_part_card,
            commands::sale::void_split,
            commands::sale::approve_beyond_lease,
            commands::catalog::search,
            commands::catalog::bought_together,
            commands::catalog::edit_product,
            commands::catalog::catalog_search,
            commands::catalog::create_product,
            commands::catalog::product_edits,
            commands::stock::stock_lookup,
            commands::stock::adjust_stock,
            commands::stock::stock_adjustments,
            commands::shortfalls::shortfalls,
            commands::shortfalls::resolve_shortfall,
            commands::reports::sales_report,
            commands::shift::shift_state,
            commands::shift::open_shift,
            commands::shift::cash_movement,
            commands::shift::count_cash,
            commands::shift::close_shift,
            commands::shift::z_reports,
            commands::refunds::recent_sales,
            commands::refunds::refund,
            commands::refunds::find_sale,
            commands::printing::printer_status,
            commands::printing::print_jobs,
            commands::printing::reprint,
            commands::printing::retry_printing,
            commands::printing::print_sales_report,
            commands::printing::print_shift_report,
            commands::printing::no_sale,
            commands::sync::sync_status,
            commands::sync::sync_now,
            commands::conflicts::conflicts,
            commands::conflicts::resolve_conflict,
        ])
        .build(tauri::generate_context!("../tauri.conf.json"))
        .context("building Kassa Register's window")?
        .run(|app, event| {
            // A clean shutdown gives the till's stock lease back (the shop may sell it again).
            if let tauri::RunEvent::Exit = event {
                let register = app.state::<kassa_register::Register>();
                match tauri::async_runtime::block_on(register.return_lease()) {
                    Ok(returned) => tracing::info!(returned, "stock lease returned at shutdown"),
                    Err(err) => tracing::warn!(%err, "returning the stock lease at shutdown"),
                }
            }
        });
    Ok(())
}

/// `kassa-register --print-test`: the test page ("Kassa", the paper's width, the characters a
/// receipt needs, a QR code) straight to `KASSA_PRINTER`, a cut and a drawer pulse; the way to
/// set a printer up.
fn print_test(config: &config::ShellConfig) -> anyhow::Result<()> {
    let printer = config.printer.as_ref().context(
        "--print-test prints to KASSA_PRINTER, which is not set: e.g. \
         KASSA_PRINTER=tcp://192.168.1.50:9100 kassa-register --print-test",
    )?;
    kassa_register::printer::print_test_page(printer)
        .with_context(|| format!("printing the test page on {}", printer.destination))?;
    println!(
        "printed the test page on {} ({} characters a line), cut, drawer pulsed",
        printer.destination,
        printer.paper.chars_per_line()
    );
    Ok(())
}
