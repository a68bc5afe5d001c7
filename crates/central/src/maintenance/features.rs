//! Feature switches: parts of Central an admin turns off under a spike so selling keeps its
//! capacity (recommendations, search facets). A switched-off feature answers `503
//! feature_disabled`; the register stops pulling and showing it, the shop hides it. Every
//! instance obeys within `KASSA_READ_ONLY_REFRESH_MS`, the switching instance at once.

use axum::extract::State;
use kassa_domain::maintenance::{Feature, FeatureState, FeatureSwitch, Features};

use super::SettingCopy;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{Admin, Auth, Customer, Json, Path};
use crate::state::AppState;

/// This instance's copy of each feature's switch: one settings row per feature
/// (`feature.recommendations`), so two admins switching two features never undo each other.
#[derive(Debug)]
pub struct FeatureSwitches([SettingCopy<FeatureSwitch>; Feature::ALL.len()]);

impl Default for FeatureSwitches {
    fn default() -> Self {
        Self(Feature::ALL.map(|f| match f {
            Feature::Recommendations => SettingCopy::new("feature.recommendations"),
            Feature::SearchFacets => SettingCopy::new("feature.search_facets"),
        }))
    }
}

impl FeatureSwitches {
    fn of(&self, feature: Feature) -> &SettingCopy<FeatureSwitch> {
        &self.0[Feature::ALL
            .iter()
            .position(|f| *f == feature)
            .unwrap_or_default()]
    }

    /// Every switch as stored now (this instance's copies refreshed).
    async fn load(&self, state: &AppState) -> anyhow::Result<Features> {
        let mut features = Vec::with_capacity(Feature::ALL.len());
        for feature in Feature::ALL {
            let switch = self.of(feature).load(&state.db).await?;
            features.push(FeatureState {
                name: feature.name().to_owned(),
                enabled: switch.enabled,
                description: feature.description().to_owned(),
            });
        }
        Ok(Features { features })
    }
}

/// Refuses with 503 `feature_disabled` when an admin has switched `feature` off.
pub async fn require(state: &AppState, feature: Feature) -> ApiResult<()> {
    let switch = state
        .features
        .of(feature)
        .current(&state.db, state.config.read_only_refresh)
        .await?;
    if switch.enabled {
        return Ok(());
    }
    Err(ApiError::NotConfigured {
        code: "feature_disabled",
        message: format!(
            "{} is switched off for now (an admin's choice under load); try again later",
            feature.name()
        ),
    })
}

/// Every feature an admin can switch off and whether it is on; anyone signed in may ask (the
/// register and the shop hide what is off).
#[utoipa::path(get, path = "/v1/admin/features", tag = "admin",
    responses((status = 200, body = Features)))]
pub async fn list_features(
    State(state): State<AppState>,
    _auth: Auth<Customer>,
) -> ApiResult<Json<Features>> {
    Ok(Json(state.features.load(&state).await?))
}

/// Switches a feature on or off (admin); every instance obeys within
/// `KASSA_READ_ONLY_REFRESH_MS`.
#[utoipa::path(put, path = "/v1/admin/features/{name}", tag = "admin",
    request_body = FeatureSwitch,
    responses((status = 200, body = Features), (status = 404)))]
pub async fn put_feature(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(name): Path<String>,
    Json(switch): Json<FeatureSwitch>,
) -> ApiResult<Json<Features>> {
    let feature = Feature::from_name(&name).ok_or(ApiError::NotFound("feature"))?;
    state.features.of(feature).store(&state.db, switch).await?;
    tracing::warn!(
        feature = feature.name(),
        enabled = switch.enabled,
        by = %auth.caller.user_id,
        "feature switched"
    );
    Ok(Json(state.features.load(&state).await?))
}
