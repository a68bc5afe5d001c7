//! Routes: login (password or PIN), refresh, logout, users and their PINs, registers.

use axum::extract::State;
use axum::http::StatusCode;
use kassa_domain::api::{
    CreateRegister, CreateUser, DeviceLoginRequest, LoginRequest, RefreshRequest, RegisterCreated,
    RegisterCredential, SetPin, TokenResponse, User,
};
use kassa_domain::Role;
use uuid::Uuid;

use super::{
    hash_password, random_token, token_hash, validate_password, validate_pin, PIN_FAILURES_MAX,
    PIN_LOCKOUT,
};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, Auth, ClientIp, Customer, Json, Manager, Path};
use crate::state::AppState;
use crate::store;

/// Signs in with username and password, or with username and PIN at a register (the
/// register's credential is required with a PIN, since a PIN is short). Wrong PINs in a row
/// lock PIN sign-in for a while (423 `pin_locked`); password sign-in is unaffected.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401), (status = 422),
        (status = 423), (status = 429)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let secret = LoginSecret::of(&req)?;
    let username = req.username.trim().to_lowercase();
    state.auth.check_login_rate(&username, ip).await?;
    let register_id = match &req.register {
        None if matches!(secret, LoginSecret::Pin(_)) => {
            return Err(ApiError::invalid(
                "register_required",
                "a PIN signs in only at a paired register: send its credential too",
            ))
        }
        None => None,
        Some(register) => Some(check_register(&state, register).await?),
    };
    let user = store::users::find_by_username(&state.db, &username).await?;
    let user = match secret {
        LoginSecret::Password(password) => {
            let hash = user.as_ref().map(|u| u.password_hash.as_str());
            let ok = state.auth.verify(password, hash).await?;
            user.filter(|_| ok)
                .ok_or(ApiError::Unauthorized("wrong username or password"))?
        }
        LoginSecret::Pin(pin) => check_pin(&state, user, pin).await?,
    };
    let tokens = state
        .auth
        .start_session(&state.db, user.user.id, user.user.role, register_id)
        .await?;
    Ok(Json(tokens))
}

/// What a login presents: exactly one of a password and a PIN.
enum LoginSecret<'a> {
    Password(&'a str),
    Pin(&'a str),
}

impl<'a> LoginSecret<'a> {
    fn of(req: &'a LoginRequest) -> ApiResult<Self> {
        match (&req.password, &req.pin) {
            (Some(password), None) => Ok(Self::Password(password)),
            (None, Some(pin)) => Ok(Self::Pin(pin)),
            _ => Err(ApiError::invalid(
                "invalid_login",
                "send either a password or a PIN (exactly one of the two)",
            )),
        }
    }
}

async fn check_register(state: &AppState, register: &RegisterCredential) -> ApiResult<Uuid> {
    let stored = store::registers::credential_hash(&state.db, register.id).await?;
    if stored.as_deref() != Some(token_hash(&register.credential).as_str()) {
        return Err(ApiError::Unauthorized(
            "unknown register or wrong register credential",
        ));
    }
    Ok(register.id)
}

/// A PIN against the user's PIN hash: refused while locked, every wrong one counted.
async fn check_pin(
    state: &AppState,
    user: Option<store::users::UserRow>,
    pin: &str,
) -> ApiResult<store::users::UserRow> {
    let now = store::now_ms();
    if let Some(until) = user
        .as_ref()
        .and_then(|u| u.pin_locked_until)
        .filter(|until| *until > now)
    {
        let wait_s = u64::try_from((until - now + 999) / 1000)
            .unwrap_or(1)
            .max(1);
        return Err(ApiError::Locked {
            code: "pin_locked",
            message: format!(
                "too many wrong PINs: PIN sign-in is locked for {wait_s} s; sign in with the password"
            ),
            retry_after_s: wait_s,
        });
    }
    let hash = user.as_ref().and_then(|u| u.pin_hash.as_deref());
    let ok = state.auth.verify(pin, hash).await?;
    match user {
        Some(user) if ok => {
            store::users::pin_succeeded(&state.db, user.user.id).await?;
            Ok(user)
        }
        Some(user) => {
            let lock_until = now + i64::try_from(PIN_LOCKOUT.as_millis()).unwrap_or(i64::MAX);
            store::users::pin_failed(&state.db, user.user.id, PIN_FAILURES_MAX, lock_until).await?;
            Err(ApiError::Unauthorized("wrong username or PIN"))
        }
        None => Err(ApiError::Unauthorized("wrong username or PIN")),
    }
}

/// Sets a user's PIN for quick sign-in at a register: a manager for cashiers (and for
/// themselves), an admin for anyone; a manager never for another manager or an admin.
#[utoipa::path(put, path = "/v1/users/{username}/pin", tag = "auth", request_body = SetPin,
    params(("username" = String, Path)),
    responses((status = 204), (status = 403), (status = 404), (status = 422)))]
pub async fn set_pin(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path(username): Path<String>,
    Json(req): Json<SetPin>,
) -> ApiResult<StatusCode> {
    validate_pin(&req.pin)?;
    let target = store::users::find_by_username(&state.db, &username.trim().to_lowercase())
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let caller = &auth.caller;
    let allowed = caller.role == Role::Admin
        || target.user.role == Role::Cashier
        || target.user.id == caller.user_id;
    if !allowed {
        return Err(ApiError::Denied {
            code: "pin_not_allowed",
            message: format!(
                "a manager sets PINs for cashiers only; {} is a {}",
                target.user.username, target.user.role
            ),
        });
    }
    let hash = hash_password(req.pin).await?;
    store::users::set_pin(&state.db, target.user.id, &hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A paired register signs itself in with its credential: a device session with role
/// `register`, allowed only the catalog and stock reads, the recommendations feed and
/// `POST /v1/sync/orders`, so a till syncs its offline sales with nobody signed in.
#[utoipa::path(post, path = "/v1/auth/device", tag = "auth", request_body = DeviceLoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401), (status = 429)))]
pub async fn device_login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<DeviceLoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let register_id = req.register.id;
    state
        .auth
        .check_login_rate(&format!("register:{register_id}"), ip)
        .await?;
    let owner = store::registers::device_owner(&state.db, register_id).await?;
    let Some((_, paired_by)) =
        owner.filter(|(hash, _)| *hash == token_hash(&req.register.credential))
    else {
        return Err(ApiError::Unauthorized(
            "unknown register or wrong register credential",
        ));
    };
    let tokens = state
        .auth
        .start_session(&state.db, paired_by, Role::Register, Some(register_id))
        .await?;
    Ok(Json(tokens))
}

/// Exchanges a refresh token for a new pair; the old refresh token stops working.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401)))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(
        state.auth.refresh(&state.db, &req.refresh_token).await?,
    ))
}

/// Ends the caller's session now: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, auth: Auth<Customer>) -> ApiResult<StatusCode> {
    state.auth.logout(&state.db, auth.caller.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a user (admin only).
#[utoipa::path(post, path = "/v1/users", tag = "auth", request_body = CreateUser,
    responses((status = 201, body = User), (status = 409)))]
pub async fn create_user(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    Json(req): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    validate_password(&req.password)?;
    if req.role == Role::Register {
        return Err(ApiError::invalid(
            "invalid_role",
            "register is a paired till's role, not a user's: pair it with POST /v1/registers",
        ));
    }
    let hash = hash_password(req.password).await?;
    match store::users::insert(&state.db, &req.username, &hash, req.role).await {
        Ok(user) => Ok((StatusCode::CREATED, Json(user))),
        Err(store::users::CreateUserError::UsernameTaken) => Err(ApiError::conflict(
            "username_taken",
            format!("username {} is taken", req.username),
            serde_json::Value::Null,
        )),
        Err(store::users::CreateUserError::Other(e)) => Err(e.into()),
    }
}

/// Pairs a register with Central (manager): returns its id and credential, shown once.
#[utoipa::path(post, path = "/v1/registers", tag = "auth", request_body = CreateRegister,
    responses((status = 201, body = RegisterCreated), (status = 422)))]
pub async fn create_register(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Json(req): Json<CreateRegister>,
) -> ApiResult<(StatusCode, Json<RegisterCreated>)> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "invalid_name",
            "register name must be 1 to 100 characters",
        ));
    }
    let location = store::locations::find_by_code(&state.db, &req.location)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "unknown_location",
                format!("no location with code {}", req.location),
            )
        })?;
    let id = Uuid::now_v7();
    let credential = random_token();
    store::registers::insert(
        &state.db,
        id,
        location.id,
        name,
        &token_hash(&credential),
        auth.caller.user_id,
    )
    .await?;
    // The key the register signs offline approvals with (derived from its credential).
    store::approvals::set_register_key(
        &state.db,
        id,
        &crate::approvals::approval_key_hex(&credential),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterCreated {
            register_id: id,
            credential,
            location: location.code,
            name: name.to_owned(),
        }),
    ))
}
