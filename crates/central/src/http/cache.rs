//! Answers a CDN or HAProxy's cache may keep: each carries an `ETag`, a matching
//! `If-None-Match` gets `304 Not Modified` with no body, and `Cache-Control` says who may keep it
//! and for how long. Only anonymous answers are `public` (the same for every visitor); a
//! signed-in caller's are `private, no-cache` (revalidated each time, still 304 when unchanged).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// How long shared caches may serve an answer, and serve it stale while they fetch a new one.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub max_age_s: u32,
    pub stale_while_revalidate_s: u32,
}

/// A product: a price or name change reaches shoppers within a minute.
pub const PRODUCT: Freshness = Freshness {
    max_age_s: 60,
    stale_while_revalidate_s: 300,
};
/// Search answers (and the catalog feed): in-stock flags move with every sale, so shorter.
pub const SEARCH: Freshness = Freshness {
    max_age_s: 30,
    stale_while_revalidate_s: 120,
};
/// Recommendations: recomputed in batches, so a few minutes do no harm.
pub const RECOMMENDATIONS: Freshness = Freshness {
    max_age_s: 300,
    stale_while_revalidate_s: 3600,
};

/// What an answer's `ETag` is made of.
#[derive(Debug, Clone)]
pub enum Tag {
    /// The resource's version (`"3"`, as `If-Match` takes it).
    Version(i64),
    /// A digest of the body.
    Body,
    /// A digest the handler made of what matters in the body (see [`digest`]).
    Digest(String),
}

/// A short digest of `value`'s JSON, for [`Tag::Digest`].
pub fn digest(value: &impl serde::Serialize) -> String {
    serde_json::to_vec(value).map_or_else(|_| String::new(), |bytes| digest_bytes(&bytes))
}

fn digest_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))[..32].to_owned()
}

/// A 200 with `body` (JSON), or a 304 when `If-None-Match` names its tag.
pub fn answer(
    headers: &HeaderMap,
    anonymous: bool,
    freshness: Freshness,
    tag: Tag,
    body: &impl serde::Serialize,
) -> Response {
    let bytes = match serde_json::to_vec(body) {
        Ok(bytes) => bytes,
        Err(e) => return super::error::ApiError::Internal(e.into()).into_response(),
    };
    let tag = match tag {
        Tag::Version(v) => format!("\"{v}\""),
        Tag::Body => format!("\"{}\"", digest_bytes(&bytes)),
        Tag::Digest(d) => format!("\"{d}\""),
    };
    let control = if anonymous {
        format!(
            "public, max-age={}, stale-while-revalidate={}",
            freshness.max_age_s, freshness.stale_while_revalidate_s
        )
    } else {
        "private, no-cache".to_owned()
    };
    let mut response = if not_modified(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response()
    };
    let out = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        out.insert(header::ETAG, tag);
    }
    if let Ok(control) = HeaderValue::from_str(&control) {
        out.insert(header::CACHE_CONTROL, control);
    }
    // Caches keep one answer for visitors and never hand it to a signed-in caller.
    out.insert(header::VARY, HeaderValue::from_static("Authorization"));
    response
}

/// `If-None-Match: "a", W/"b"` or `*` names `tag` (weak comparison, as RFC 9110 asks for GET).
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_a_star() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(not_modified(&with("\"3\""), "\"3\""));
        assert!(not_modified(&with("W/\"3\""), "\"3\""));
        assert!(not_modified(&with("\"1\", \"3\""), "\"3\""));
        assert!(not_modified(&with("*"), "\"3\""));
        assert!(!not_modified(&with("\"4\""), "\"3\""));
        assert!(!not_modified(&HeaderMap::new(), "\"3\""));
    }
}
