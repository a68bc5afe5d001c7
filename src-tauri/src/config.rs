//! The shell's settings, all from the environment (nothing is required):
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `KASSA_CENTRAL_URL` | Kassa Central's base URL | `http://127.0.0.1:8080` |
//! | `KASSA_REGISTER_DATA` | the register's data dir (SQLite store, secrets fallback) | the OS app data dir |
//! | `KASSA_SECRETS_SERVICE` | the keyring service name | `kassa-register` |
//! | `KASSA_PAIR_MANAGER`, `KASSA_PAIR_PASSWORD` | pair on start when not yet paired (demo) | unset: pair in the UI |
//! | `KASSA_PAIR_LOCATION`, `KASSA_PAIR_CODE` | the store and till code for that pairing | `STORE-1`, `R1` |
//! | `KASSA_SIGN_IN_USER`, `KASSA_SIGN_IN_PASSWORD` | sign a staff member in on start (demo) | unset: sign in in the UI |
//! | `KASSA_SYNC_INTERVAL_MS`, `KASSA_SYNC_BACKOFF_MAX_MS` | the sync engine's pace | 10 000, 60 000 |
//! | `KASSA_OFFLINE_CARD_LIMIT` | the offline card policy: card sales up to this total (the shop's currency, e.g. `50.00`) are taken with Central out of reach | unset: card needs Central |
//! | `KASSA_LEASE_WINDOW_H` | stock leases: the till leases at Central what its sales over this many hours say it will sell offline, where a manager has set the location's lease settings (see docs/checkout.md) | 168 (a week); 0: no lease at this till |
//! | `KASSA_CARD_PAYMENT_METHOD` | what the card terminal hands over: the processor's payment-method token | `pm_card_visa` (the simulator's approved card) |
//! | `KASSA_PRINTER` | the ESC/POS receipt printer (and the cash drawer on it): `tcp://host:9100`, `usb://VID:PID`, `serial:///dev/ttyUSB0?baud=9600`, `file:///dev/usb/lp0` | unset: the web view prints |
//! | `KASSA_PAPER_MM` | the printer's paper width, 58 or 80 | 80 |
//! | `KASSA_RECEIPT_HEADER`, `KASSA_RECEIPT_FOOTER` | the shop's lines on every receipt, `\|` between lines | none; "Thank you for shopping with us" |

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kassa_domain::{Currency, Money};
use kassa_register::printer::{Destination, Paper, PrinterConfig};

/// Pairing read from the environment (the demo and the end-to-end test).
#[derive(Clone)]
pub struct Pairing {
    pub manager: String,
    pub password: String,
    pub location: String,
    pub code: String,
}

impl std::fmt::Debug for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pairing")
            .field("manager", &self.manager)
            .field("location", &self.location)
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

/// A staff sign-in read from the environment.
#[derive(Clone)]
pub struct AutoSignIn {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for AutoSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoSignIn")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct ShellConfig {
    pub central_url: String,
    pub data_dir: Option<PathBuf>,
    pub secrets_service: String,
    pub pairing: Option<Pairing>,
    pub sign_in: Option<AutoSignIn>,
    pub sync_interval: Option<Duration>,
    pub sync_backoff_max: Option<Duration>,
    /// The offline card policy's per-sale limit (off when `None`).
    pub offline_card_limit: Option<Money>,
    pub card_payment_method: Option<String>,
    /// Stock leases: the window of sales the till's velocity is read from (off when `None`).
    pub lease_window: Option<Duration>,
    /// The receipt printer (`None`: the web view prints).
    pub printer: Option<PrinterConfig>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn millis(name: &str) -> anyhow::Result<Option<Duration>> {
    var(name)
        .map(|v| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .with_context(|| format!("{name}={v} is not a number of milliseconds"))
        })
        .transpose()
}

/// How many hours of sales a till's stock lease is sized from when `KASSA_LEASE_WINDOW_H` is
/// unset: a week, so a weekly rhythm (a busy Saturday) counts.
const LEASE_WINDOW_H_DEFAULT: u64 = 168;

/// The stock lease window from `KASSA_LEASE_WINDOW_H`: a whole number of hours, a week when
/// unset, 0 for no lease at this till. The till leases only at a location whose lease settings
/// a manager has set (`PUT /v1/settings/leases`), so the default changes nothing elsewhere.
fn lease_window(value: Option<&str>) -> anyhow::Result<Option<Duration>> {
    let hours = match value {
        None => LEASE_WINDOW_H_DEFAULT,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .with_context(|| format!("KASSA_LEASE_WINDOW_H={v} is not a number of hours"))?,
    };
    Ok((hours > 0).then(|| Duration::from_secs(hours.saturating_mul(3600))))
}

/// The register's carts are priced in EUR (`RegisterConfig::new`), and so is this limit.
fn money(name: &str) -> anyhow::Result<Option<Money>> {
    var(name)
        .map(|v| {
            let limit = Money::parse(v.trim(), Currency::EUR)
                .with_context(|| format!("{name}={v} is not an amount like 50.00"))?;
            anyhow::ensure!(!limit.is_negative(), "{name}={v} is negative");
            Ok(limit)
        })
        .transpose()
}

/// `KASSA_PRINTER` and its companions; a bad value stops the app with the forms that work.
fn printer() -> anyhow::Result<Option<PrinterConfig>> {
    let Some(url) = var("KASSA_PRINTER") else {
        return Ok(None);
    };
    let destination: Destination = url.parse().context("KASSA_PRINTER")?;
    let mut config = PrinterConfig::new(destination);
    if let Some(mm) = var("KASSA_PAPER_MM") {
        config.paper = mm.parse::<Paper>().context("KASSA_PAPER_MM")?;
    }
    let lines = |v: String| -> Vec<String> {
        v.split('|')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    };
    if let Some(header) = var("KASSA_RECEIPT_HEADER") {
        config.style.header = lines(header);
    }
    if let Some(footer) = var("KASSA_RECEIPT_FOOTER") {
        config.style.footer = lines(footer);
    }
    Ok(Some(config))
}

impl ShellConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let pairing = match (var("KASSA_PAIR_MANAGER"), var("KASSA_PAIR_PASSWORD")) {
            (Some(manager), Some(password)) => Some(Pairing {
                manager,
                password,
                location: var("KASSA_PAIR_LOCATION").unwrap_or_else(|| "STORE-1".into()),
                code: var("KASSA_PAIR_CODE").unwrap_or_else(|| "R1".into()),
            }),
            _ => None,
        };
        let sign_in = match (var("KASSA_SIGN_IN_USER"), var("KASSA_SIGN_IN_PASSWORD")) {
            (Some(username), Some(password)) => Some(AutoSignIn { username, password }),
            _ => None,
        };
        Ok(Self {
            central_url: var("KASSA_CENTRAL_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            data_dir: var("KASSA_REGISTER_DATA").map(PathBuf::from),
            secrets_service: var("KASSA_SECRETS_SERVICE")
                .unwrap_or_else(|| "kassa-register".into()),
            pairing,
            sign_in,
            sync_interval: millis("KASSA_SYNC_INTERVAL_MS")?,
            sync_backoff_max: millis("KASSA_SYNC_BACKOFF_MAX_MS")?,
            offline_card_limit: money("KASSA_OFFLINE_CARD_LIMIT")?,
            card_payment_method: var("KASSA_CARD_PAYMENT_METHOD"),
            lease_window: lease_window(var("KASSA_LEASE_WINDOW_H").as_deref())?,
            printer: printer()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_window_is_a_week_unless_set_and_0_turns_it_off() {
        let hour = Duration::from_secs(3600);
        assert_eq!(lease_window(None).unwrap(), Some(hour * 168));
        assert_eq!(lease_window(Some("24")).unwrap(), Some(hour * 24));
        assert_eq!(lease_window(Some("0")).unwrap(), None);
        assert!(lease_window(Some("a week")).is_err());
    }
}
