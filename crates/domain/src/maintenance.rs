//! Graceful degradation's wire types: read-only mode (an admin stops every write at Central for a
//! while: a stock count, a database move, an incident, while browsing, signing in and offline
//! selling go on) and feature switches (parts of Central an admin turns off under load).

use serde::{Deserialize, Serialize};

/// The longest message read-only mode carries.
pub const READ_ONLY_MESSAGE_CHARS_MAX: usize = 200;

/// `GET/PUT /v1/admin/read-only`: whether Central refuses writes, and what it tells clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReadOnlyMode {
    pub enabled: bool,
    /// Shown to staff and shoppers while writes are refused ("Stock count until 07:00"), at
    /// most 200 characters.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub message: String,
}

/// A part of Central an admin can switch off under load (`PUT /v1/admin/features/{name}`);
/// switched off it answers 503 `feature_disabled` and the register and shop hide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// "Frequently bought together": `GET /v1/recommendations…`.
    Recommendations,
    /// Facet counts on search (`GET /v1/search?facets=…`); plain search goes on.
    SearchFacets,
}

impl Feature {
    pub const ALL: [Feature; 2] = [Feature::Recommendations, Feature::SearchFacets];

    /// The name in paths and answers.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Recommendations => "recommendations",
            Feature::SearchFacets => "search_facets",
        }
    }

    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What switching it off saves and costs, for the admin's screen.
    pub fn description(self) -> &'static str {
        match self {
            Feature::Recommendations => {
                "Frequently bought together: product pages and the register's suggestions"
            }
            Feature::SearchFacets => "Facet counts (category, brand, price) on search answers",
        }
    }
}

/// One feature's switch in `GET /v1/admin/features`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureState {
    /// `recommendations` or `search_facets`.
    pub name: String,
    pub enabled: bool,
    pub description: String,
}

/// `GET /v1/admin/features`: every feature an admin can switch off, and whether it is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Features {
    pub features: Vec<FeatureState>,
}

impl Features {
    /// Whether `feature` is on (a feature the answer does not name is on).
    pub fn enabled(&self, feature: Feature) -> bool {
        self.features
            .iter()
            .find(|f| f.name == feature.name())
            .is_none_or(|f| f.enabled)
    }
}

/// `PUT /v1/admin/features/{name}`: switch a feature on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FeatureSwitch {
    pub enabled: bool,
}

/// A feature nobody switched is on.
impl Default for FeatureSwitch {
    fn default() -> Self {
        Self { enabled: true }
    }
}
