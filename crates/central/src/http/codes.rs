//! What each error status means and the `code` values it carries: one table, from which the
//! OpenAPI document describes every error answer and docs/api.md lists them. Tests keep it true:
//! every code the sources answer with is listed under its status, and the docs show the table.

/// One error status of the API.
#[derive(Debug)]
pub struct StatusCodes {
    pub status: u16,
    /// When it is answered.
    pub when: &'static str,
    /// The `error.code` values it carries.
    pub codes: &'static [&'static str],
}

/// Every error status Central answers with, and its codes.
pub const CODES: &[StatusCodes] = &[
    StatusCodes {
        status: 400,
        when: "malformed request: bad JSON, bad path or query value, bad or missing header",
        codes: &[
            "invalid_json",
            "invalid_body",
            "invalid_path",
            "invalid_query",
            "query_too_long",
            "invalid_cursor",
            "invalid_limit",
            "invalid_page",
            "invalid_price",
            "unknown_facet",
            "unknown_sort",
            "invalid_status",
            "invalid_sku",
            "invalid_if_match",
            "invalid_cart_token",
            "missing_idempotency_key",
            "invalid_idempotency_key",
            "missing_signature",
            "invalid_signature",
            "stale_signature",
            "invalid_event",
        ],
    },
    StatusCodes {
        status: 401,
        when: "no valid bearer token (or wrong password at login)",
        codes: &["unauthorized"],
    },
    StatusCodes {
        status: 402,
        when: "the card processor declined",
        codes: &["card_declined"],
    },
    StatusCodes {
        status: 403,
        when: "the role may not do this, or not here",
        codes: &[
            "forbidden",
            "not_a_register",
            "pin_not_allowed",
            "wrong_location",
            "other_register",
        ],
    },
    StatusCodes {
        status: 404,
        when: "the resource (or route) does not exist",
        codes: &["not_found"],
    },
    StatusCodes {
        status: 405,
        when: "the route exists, not with this method",
        codes: &["method_not_allowed"],
    },
    StatusCodes {
        status: 409,
        when: "conflicts with the current state",
        codes: &[
            "insufficient_stock",
            "illegal_transition",
            "concurrent_update",
            "idempotency_in_flight",
            "sku_taken",
            "barcode_taken",
            "location_exists",
            "username_taken",
            "order_exists",
            "order_id_reused",
            "payment_in_flight",
            "refund_exists",
            "reservation_ended",
            "reservation_has_order",
            "lease_ended",
            "already_resolved",
            "currency_mismatch",
            "shift_already_reported",
            "z_number_taken",
        ],
    },
    StatusCodes {
        status: 410,
        when: "the guest cart expired",
        codes: &["cart_expired"],
    },
    StatusCodes {
        status: 412,
        when: "`If-Match` names an old version; `details.current` is the row now",
        codes: &["version_conflict"],
    },
    StatusCodes {
        status: 413,
        when: "body over `KASSA_BODY_BYTES_MAX`",
        codes: &["payload_too_large"],
    },
    StatusCodes {
        status: 415,
        when: "a body without `Content-Type: application/json`",
        codes: &["unsupported_media_type"],
    },
    StatusCodes {
        status: 422,
        when: "well-formed, invalid values (the message names the field and what to fix), and text PostgreSQL cannot store (a NUL character)",
        codes: &[
            "invalid_body",
            "unexpected_field",
            "invalid_text",
            "invalid_amount",
            "invalid_quantity",
            "invalid_lines",
            "lines_or_amount",
            "duplicate_sku",
            "invalid_order",
            "invalid_order_id",
            "invalid_cart",
            "invalid_payment",
            "invalid_payments",
            "payment_method_required",
            "invalid_product",
            "invalid_name",
            "invalid_note",
            "invalid_message",
            "invalid_delta",
            "invalid_reason",
            "invalid_password",
            "invalid_pin",
            "invalid_role",
            "invalid_login",
            "invalid_location",
            "invalid_threshold",
            "invalid_discount_limit",
            "invalid_cash_rounding",
            "rounding_not_cash",
            "invalid_time_zone",
            "invalid_ttl",
            "invalid_lease_settings",
            "invalid_z_report",
            "invalid_approver",
            "missing_register",
            "register_required",
            "unknown_register",
            "idempotency_key_reused",
            "unknown_sku",
            "unknown_location",
            "wrong_location",
            "currency_mismatch",
            "discount_not_allowed",
            "approval_required",
            "approval_unknown",
            "approval_used",
            "approval_expired",
            "approver_mismatch",
            "wrong_register",
            "not_a_manager",
            "bad_signature",
            "tendered_required",
            "tendered_too_little",
            "refund_exceeds_paid",
            "return_exceeds_sold",
            "payment_rejected",
            "refund_rejected",
            "batch_too_large",
        ],
    },
    StatusCodes {
        status: 423,
        when: "PIN sign-in locked for a while (`Retry-After`)",
        codes: &["pin_locked"],
    },
    StatusCodes {
        status: 428,
        when: "`If-Match` is required",
        codes: &["precondition_required"],
    },
    StatusCodes {
        status: 429,
        when: "too many sign-ins, or over the per-user request rate (`Retry-After`)",
        codes: &["rate_limited"],
    },
    StatusCodes {
        status: 500,
        when: "a bug: logged with the request id, never explained",
        codes: &["internal"],
    },
    StatusCodes {
        status: 502,
        when: "the card processor did not answer: retry with the same `Idempotency-Key`",
        codes: &["processor_unavailable"],
    },
    StatusCodes {
        status: 503,
        when: "the database is unreachable or the request timed out (`unavailable`); a feature the operator did not configure (`card_payments_unavailable`: no `KASSA_PROCESSOR_URL`; `webhooks_not_configured`: no `KASSA_WEBHOOK_SECRET`) or switched off (`feature_disabled`); read-only mode (`read_only`, the admin's message, `Retry-After`); load shedding (`overloaded`, `Retry-After: 1`); a guest cart kept in Redis while Redis is down (`cart_unavailable`, `Retry-After: 1`)",
        codes: &[
            "unavailable",
            "card_payments_unavailable",
            "webhooks_not_configured",
            "feature_disabled",
            "read_only",
            "overloaded",
            "cart_unavailable",
        ],
    },
];

/// The entry of `status`.
pub fn of(status: u16) -> Option<&'static StatusCodes> {
    CODES.iter().find(|c| c.status == status)
}

/// `` `a`, `b`, `c` ``: a status's codes as the docs and the document write them.
pub fn listed(codes: &[&str]) -> String {
    codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table of docs/api.md's "Errors" section.
pub fn docs_table() -> String {
    let mut table = String::from("| status | when | codes |\n| --- | --- | --- |\n");
    for c in CODES {
        table.push_str(&format!(
            "| {} | {} | {} |\n",
            c.status,
            c.when,
            listed(c.codes)
        ));
    }
    table
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::{of, CODES};
    use crate::http::error::ApiError;

    /// Where the sources name a code, and the status that code is answered with: the helpers
    /// and variants of `ApiError` that take a code (and the local shorthands for them).
    const MARKERS: &[(&str, u16)] = &[
        ("bad_request(", 400),
        ("bad(", 400),
        ("invalid(", 422),
        ("conflict(", 409),
        ("BadRequest {", 400),
        ("PaymentRequired {", 402),
        ("Denied {", 403),
        ("Conflict {", 409),
        ("Gone {", 410),
        ("Invalid {", 422),
        ("Locked {", 423),
        ("BadGateway {", 502),
        ("TryLater {", 503),
        ("NotConfigured {", 503),
    ];

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The string literal right after `marker` (past whitespace and a `code:`), if there is one.
    fn literal_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
        let rest = text[marker.len()..].trim_start();
        let rest = if marker.ends_with('{') {
            rest.strip_prefix("code:")?.trim_start()
        } else {
            rest
        };
        let rest = rest.strip_prefix('"')?;
        let end = rest.find('"')?;
        let code = &rest[..end];
        code.bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
            .then_some(code)
    }

    /// Every code written in Central's sources, with its status.
    fn codes_in_sources() -> BTreeSet<(u16, String)> {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut found = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for &(marker, status) in MARKERS {
                for (at, _) in text.match_indices(marker) {
                    if let Some(code) = literal_after(&text[at..], marker) {
                        found.insert((status, code.to_owned()));
                    }
                }
            }
            // The approval checks name their refusal, answered as 422 with that code.
            if file.ends_with("approvals/mod.rs") {
                for (at, _) in text.match_indices("Err(") {
                    if let Some(code) = literal_after(&text[at..], "Err(") {
                        found.insert((422, code.to_owned()));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_code_the_sources_answer_with_is_listed_under_its_status() {
        let found = codes_in_sources();
        assert!(
            found.len() > 80,
            "the scan found only {} codes: did the markers change?",
            found.len()
        );
        let missing: Vec<_> = found
            .iter()
            .filter(|(status, code)| !of(*status).is_some_and(|c| c.codes.contains(&code.as_str())))
            .collect();
        assert!(
            missing.is_empty(),
            "codes answered but not listed in http/codes.rs: {missing:?}"
        );
    }

    #[test]
    fn the_fixed_codes_of_the_error_variants_are_listed_under_their_status() {
        let errors = [
            ApiError::Unauthorized("no token"),
            ApiError::Forbidden,
            ApiError::NotFound("order"),
            ApiError::MethodNotAllowed,
            ApiError::PreconditionFailed {
                current: serde_json::Value::Null,
            },
            ApiError::PayloadTooLarge,
            ApiError::UnsupportedMediaType,
            ApiError::PreconditionRequired("If-Match"),
            ApiError::TooManyRequests { retry_after_s: 1 },
            ApiError::Unavailable,
            ApiError::Overloaded { retry_after_s: 1 },
            ApiError::ReadOnly {
                message: "count".into(),
                retry_after_s: 30,
            },
            ApiError::Internal(anyhow::anyhow!("a bug")),
        ];
        for error in errors {
            let (status, body) = error.render();
            let listed =
                of(status.as_u16()).is_some_and(|c| c.codes.contains(&body.error.code.as_str()));
            assert!(listed, "{status} {} is not listed", body.error.code);
        }
    }

    /// docs/api.md's generated block `name` (between `<!-- generated: name -->` and
    /// `<!-- end: name -->`) is `expected`; `KASSA_BLESS_DOCS=1` writes it instead.
    pub(crate) fn docs_block(name: &str, expected: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = format!("<!-- generated: {name} -->\n");
        let end = format!("<!-- end: {name} -->");
        let from = text.find(&start).expect("the block's start marker") + start.len();
        let to = from + text[from..].find(&end).expect("the block's end marker");
        if &text[from..to] == expected {
            return;
        }
        if std::env::var_os("KASSA_BLESS_DOCS").is_some() {
            std::fs::write(&path, format!("{}{expected}{}", &text[..from], &text[to..])).unwrap();
            return;
        }
        panic!(
            "docs/api.md's {name} table is not what the code says; rerun with KASSA_BLESS_DOCS=1 \
             to write it. Expected:\n{expected}"
        );
    }

    #[test]
    fn the_docs_show_every_status_and_its_codes() {
        docs_block("errors", &super::docs_table());
    }

    #[test]
    fn no_code_is_listed_twice_under_one_status() {
        for c in CODES {
            let unique: BTreeSet<_> = c.codes.iter().collect();
            assert_eq!(unique.len(), c.codes.len(), "{} repeats a code", c.status);
        }
    }
}
