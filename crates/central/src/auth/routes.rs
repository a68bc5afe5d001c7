//! Routes: login, refresh, logout, users, registers.

use axum::extract::State;
use axum::http::StatusCode;
use kassa_domain::api::{
    CreateRegister, CreateUser, LoginRequest, RefreshRequest, RegisterCreated, TokenResponse, User,
};
use uuid::Uuid;

use super::{hash_password, random_token, token_hash, validate_password};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, Auth, ClientIp, Customer, Json, Manager};
use crate::state::AppState;
use crate::store;

/// Signs in with username and password; at a register, also with the register's credential.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401), (status = 429)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let username = req.username.trim().to_lowercase();
    state.auth.check_login_rate(&username, ip)?;
    let user = store::users::find_by_username(&state.db, &username).await?;
    let ok = state
        .auth
        .verify(
            &req.password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await?;
    let Some(user) = user.filter(|_| ok) else {
        return Err(ApiError::Unauthorized("wrong username or password"));
    };
    let register_id = match &req.register {
        None => None,
        Some(register) => {
            let stored = store::registers::credential_hash(&state.db, register.id).await?;
            if stored.as_deref() != Some(token_hash(&register.credential).as_str()) {
                return Err(ApiError::Unauthorized(
                    "unknown register or wrong register credential",
                ));
            }
            Some(register.id)
        }
    };
    let tokens = state
        .auth
        .start_session(&state.db, user.user.id, user.user.role, register_id)
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
