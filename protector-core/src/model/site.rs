//! Registered sites.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::ids::SiteId;

/// Reachability status of a registered site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteStatus {
    /// Reachable and validated.
    Active,
    /// Its APIs cannot be reached.
    Unreachable,
    /// Reachable but failing validation.
    Error,
}

impl SiteStatus {
    /// The string the API and CLI show.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Unreachable => "unreachable",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for SiteStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Service credentials for a site. Secrets are [`SecretString`]s: they never appear in
/// `Debug` output and are never serialised with the site.
#[derive(Clone, Debug, Default)]
pub struct SiteCredentials {
    /// Keystone user name (password auth).
    pub username: Option<String>,
    /// Keystone password.
    pub password: Option<SecretString>,
    /// Project to scope to, by name.
    pub project_name: Option<String>,
    /// Project to scope to, by id.
    pub project_id: Option<String>,
    /// Domain of the user.
    pub user_domain_name: Option<String>,
    /// Domain of the project.
    pub project_domain_name: Option<String>,
    /// Application credential id (application-credential auth).
    pub application_credential_id: Option<String>,
    /// Application credential secret.
    pub application_credential_secret: Option<SecretString>,
}

/// A registered OpenStack deployment taking part in DR.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Site {
    /// Site id.
    pub id: SiteId,
    /// Unique name (`site-a`).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Keystone v3 URL.
    pub auth_url: String,
    /// Region of the site's endpoints.
    #[serde(default)]
    pub region_name: Option<String>,
    /// Endpoint interface (`public`, `internal`, `admin`).
    #[serde(default)]
    pub interface: Option<String>,
    /// The `clouds.yaml` entry the site was registered from, if any.
    #[serde(default)]
    pub cloud: Option<String>,
    /// Status from the last validation.
    pub status: SiteStatus,
    /// Service credentials: kept server-side, never serialised back.
    #[serde(skip)]
    pub credentials: SiteCredentials,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last validation time.
    #[serde(default)]
    pub last_validated_at: Option<DateTime<Utc>>,
}
