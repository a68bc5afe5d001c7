//! Extractors: JSON/query/path that fail with the common error body, and [`Auth`], the role check
//! every non-public route takes.

use std::marker::PhantomData;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use kassa_domain::Role;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

/// `axum::Json` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::Invalid {
            code: "invalid_body",
            message: e.body_text(),
            details: serde_json::Value::Null,
        },
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("invalid_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// `axum::extract::Path` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// Which roles may call a route.
pub trait Policy: Send + Sync + 'static {
    fn allows(role: Role) -> bool;
}

/// Anyone signed in, customers included.
#[derive(Debug)]
pub struct Customer;
/// Store staff: cashiers, managers, admins.
#[derive(Debug)]
pub struct Staff;
/// Managers and admins.
#[derive(Debug)]
pub struct Manager;
/// Admins only.
#[derive(Debug)]
pub struct Admin;

impl Policy for Customer {
    fn allows(_: Role) -> bool {
        true
    }
}
impl Policy for Staff {
    fn allows(role: Role) -> bool {
        matches!(role, Role::Admin | Role::Manager | Role::Cashier)
    }
}
impl Policy for Manager {
    fn allows(role: Role) -> bool {
        matches!(role, Role::Admin | Role::Manager)
    }
}
impl Policy for Admin {
    fn allows(role: Role) -> bool {
        role == Role::Admin
    }
}

/// The authenticated caller, admitted by policy `P`: a valid bearer token of a live session,
/// within the per-user rate limit, with a role `P` allows (401, 429 and 403 otherwise).
#[derive(Debug)]
pub struct Auth<P> {
    pub caller: Caller,
    policy: PhantomData<P>,
}

impl<P: Policy> FromRequestParts<AppState> for Auth<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let caller = state.auth.authenticate(&state.db, token).await?;
        state.auth.check_caller_rate(&caller).await?;
        if let Some(register_id) = caller.register_id {
            crate::telemetry::metrics::register_report(register_id, &parts.headers);
        }
        // A register's device session counts as a cashier on the few routes it may use.
        let role = match caller.role {
            Role::Register if register_may(&parts.method, parts.uri.path()) => Role::Cashier,
            Role::Register => return Err(ApiError::Forbidden),
            role => role,
        };
        if !P::allows(role) {
            return Err(ApiError::Forbidden);
        }
        Ok(Self {
            caller,
            policy: PhantomData,
        })
    }
}

/// `Kassa-Read-After`: the `Kassa-Write-Position` a client got from its last write. A read that
/// carries it waits (boundedly) for the replica to replay that far, else reads the primary, so a
/// client always sees its own writes. A value that is not a position reads the primary.
#[derive(Debug, Clone, Copy)]
pub struct ReadAfter(pub Option<crate::store::WritePosition>);

/// The request header of [`ReadAfter`] and the response header writes carry.
pub const READ_AFTER: &str = "kassa-read-after";
pub const WRITE_POSITION: &str = "kassa-write-position";

impl ReadAfter {
    /// The database this request reads from.
    pub async fn db(&self, state: &AppState) -> crate::store::Db {
        state.db.for_reads(self.0).await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReadAfter {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get(READ_AFTER) else {
            return Ok(Self(None));
        };
        // Unreadable: as far as possible (the primary), never a stale read.
        let max = crate::store::WritePosition::parse("FFFFFFFF/FFFFFFFF");
        Ok(Self(
            raw.to_str()
                .ok()
                .and_then(crate::store::WritePosition::parse)
                .or(max),
        ))
    }
}

/// A caller of the public catalog reads (products, search, recommendations): signed in, as
/// [`Auth<Customer>`] checks (a bad token is still a 401), or anonymous with no token, then
/// rate limited per client address.
#[derive(Debug)]
pub struct Browse {
    pub caller: Option<Caller>,
}

impl Browse {
    pub fn anonymous(&self) -> bool {
        self.caller.is_none()
    }
}

impl FromRequestParts<AppState> for Browse {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let auth = Auth::<Customer>::from_request_parts(parts, state).await?;
            return Ok(Self {
                caller: Some(auth.caller),
            });
        }
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
        state.auth.check_anonymous_rate(ip).await?;
        Ok(Self { caller: None })
    }
}

/// What a register's device session may call (with a cashier's rights there): the catalog
/// and product reads, stock reads, the recommendations feed, an order's refunds (to settle a
/// refund the till asked for), read-only mode and the feature switches, the offline sales sync, its own stock leases (the lease routes
/// check the device's own register), and logging itself out.
fn register_may(method: &axum::http::Method, path: &str) -> bool {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    match *method {
        axum::http::Method::GET => {
            under("/v1/products")
                || under("/v1/stock")
                || path == "/v1/recommendations"
                || path == "/v1/settings/sale"
                || path == "/v1/admin/read-only"
                || path == "/v1/admin/features"
                || path == "/v1/settings/leases"
                || path == "/v1/locations"
                || is_order_refunds(path)
        }
        axum::http::Method::POST => {
            path == "/v1/sync/orders"
                || path == "/v1/sync/shifts"
                || path == "/v1/auth/logout"
                || path == "/v1/stock/leases"
        }
        axum::http::Method::PUT | axum::http::Method::DELETE => {
            path.starts_with("/v1/stock/leases/")
        }
        _ => false,
    }
}

/// `/v1/orders/{id}/refunds`.
fn is_order_refunds(path: &str) -> bool {
    path.strip_prefix("/v1/orders/")
        .and_then(|rest| rest.strip_suffix("/refunds"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The client's address (loopback when the server was not given connection info, as in
/// `oneshot` tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Ok(Self(client_address(
            peer,
            forwarded,
            &state.config.trusted_proxies,
        )))
    }
}

/// The client behind `peer`: `peer` itself unless it is a trusted proxy; then, walking
/// `X-Forwarded-For` (its values in order, each a comma-separated list, the nearest hop last)
/// from the right, the first address that is not a trusted proxy. Addresses further left were
/// written by the client or by proxies nobody vouches for, so they are never believed. A
/// malformed hop ends the walk at the last trusted address seen.
fn client_address<'a>(
    peer: std::net::IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded.flat_map(|value| value.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.trim().parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

/// The header a guest sends its cart token in.
pub const CART_TOKEN_HEADER: &str = "x-cart-token";
/// Longer than any token Central issues (43 characters); bounds the hashing work.
pub const CART_TOKEN_CHARS_MAX: usize = 128;

/// What may open a cart: a signed-in caller (a bearer token, checked like [`Auth`]: 401 when
/// invalid, 429 over the rate) and a guest cart token (`X-Cart-Token`), each optional. The cart
/// routes decide what these open; a cart they do not open is a 404, so its existence is not
/// revealed.
#[derive(Debug)]
pub struct CartCredentials {
    pub caller: Option<Caller>,
    pub cart_token: Option<String>,
}

impl FromRequestParts<AppState> for CartCredentials {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or(ApiError::Unauthorized(
                        "Authorization must be a bearer token",
                    ))?;
                let caller = state.auth.authenticate(&state.db, token).await?;
                state.auth.check_caller_rate(&caller).await?;
                // A register's device session holds no carts.
                if caller.role == Role::Register {
                    return Err(ApiError::Forbidden);
                }
                Some(caller)
            }
        };
        let cart_token = match parts.headers.get(CART_TOKEN_HEADER) {
            None => None,
            Some(value) => match value.to_str() {
                Ok(token) if !token.is_empty() && token.len() <= CART_TOKEN_CHARS_MAX => {
                    Some(token.to_owned())
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_cart_token",
                        "X-Cart-Token must be a cart token",
                    ))
                }
            },
        };
        Ok(Self { caller, cart_token })
    }
}

#[cfg(test)]
mod tests {
    use super::client_address;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(s: &str) -> Vec<ipnet::IpNet> {
        crate::config::parse_networks(s).unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let client = client_address(ip("198.51.100.7"), ["203.0.113.1"].into_iter(), &[]);
        assert_eq!(client, ip("198.51.100.7"));
        let client = client_address(
            ip("198.51.100.7"),
            ["203.0.113.1"].into_iter(),
            &nets("10.0.0.0/8"),
        );
        assert_eq!(client, ip("198.51.100.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets("10.0.0.0/8, 127.0.0.1");
        // A client-written (spoofed) address on the left is never believed.
        let client = client_address(
            ip("127.0.0.1"),
            ["1.2.3.4, 203.0.113.9", "10.1.2.3"].into_iter(),
            &trusted,
        );
        assert_eq!(client, ip("203.0.113.9"));
        // Only trusted hops: the furthest one.
        let client = client_address(ip("127.0.0.1"), ["10.0.0.5"].into_iter(), &trusted);
        assert_eq!(client, ip("10.0.0.5"));
        // No header: the proxy itself.
        let client = client_address(ip("127.0.0.1"), std::iter::empty(), &trusted);
        assert_eq!(client, ip("127.0.0.1"));
        // Garbage stops the walk at the last trusted hop.
        let client = client_address(
            ip("127.0.0.1"),
            ["203.0.113.9, nonsense, 10.0.0.5"].into_iter(),
            &trusted,
        );
        assert_eq!(client, ip("10.0.0.5"));
        let client = client_address(
            ip("127.0.0.1"),
            ["::1, 2001:db8::1"].into_iter(),
            &nets("127.0.0.1"),
        );
        assert_eq!(client, ip("2001:db8::1"));
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_blocks_and_refuse_garbage() {
        assert_eq!(nets("10.0.0.0/8, 127.0.0.1 ,::1").len(), 3);
        assert!(nets("").is_empty());
        assert!(crate::config::parse_networks("10.0.0.0/33").is_err());
        assert!(crate::config::parse_networks("proxy.example").is_err());
    }
}
