//! Keystone v3: tokens, their identity, and the service catalog.
//!
//! # Expected flow
//! A [`crate::Session`] posts `POST /v3/auth/tokens` (password or application
//! credential), reads the token id from `X-Subject-Token` and the body into a
//! [`Token`], and resolves service endpoints from its [`Catalog`] by service type,
//! interface and region.
//!
//! # Caveats
//! Only project-scoped tokens are requested (an application credential brings its own
//! scope); domain and system scope are not supported.

pub(crate) mod api;
pub(crate) mod wire;

use chrono::{DateTime, Utc};
use protector_core::{BackendError, RequestContext, Service};
use secrecy::SecretString;
use url::Url;

use crate::config::Interface;

/// The OpenStack services a site talks to, with the catalog types that name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServiceType {
    /// Keystone: `identity`.
    Identity,
    /// Nova: `compute`.
    Compute,
    /// Cinder: `block-storage`, `volumev3`, `volume`.
    BlockStorage,
    /// Neutron: `network`.
    Network,
}

impl ServiceType {
    /// Catalog types accepted for the service, in order of preference.
    pub fn catalog_types(self) -> &'static [&'static str] {
        match self {
            Self::Identity => &["identity"],
            Self::Compute => &["compute"],
            Self::BlockStorage => &["block-storage", "volumev3", "volume"],
            Self::Network => &["network"],
        }
    }

    /// The [`Service`] errors are attributed to.
    pub fn service(self) -> Service {
        match self {
            Self::Identity => Service::Identity,
            Self::Compute => Service::Compute,
            Self::BlockStorage => Service::BlockStorage,
            Self::Network => Service::Network,
        }
    }
}

/// One endpoint of a catalog service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// The region (`region_id`, else the older `region`).
    pub region: Option<String>,
    /// The URL, as the catalog spells it.
    pub url: String,
}

/// One service of the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogService {
    /// The catalog type (`compute`, `volumev3`, …).
    pub service_type: String,
    /// The service name (`nova`, `cinderv3`, …).
    pub name: Option<String>,
    /// Its endpoints.
    pub endpoints: Vec<Endpoint>,
}

/// The service catalog of a token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The services, in Keystone's order.
    pub services: Vec<CatalogService>,
}

impl Catalog {
    /// The endpoint URL of `service` for `interface` in `region` (any region when
    /// `None`). The first matching catalog type wins; then the first endpoint.
    ///
    /// # Errors
    /// `NotFound` (from Keystone) naming the service types, interface and region asked
    /// for, and what the catalog offers for that service instead.
    pub fn endpoint(
        &self,
        service: ServiceType,
        interface: Interface,
        region: Option<&str>,
    ) -> Result<Url, BackendError> {
        let types = service.catalog_types();
        let mut offered = Vec::new();
        for ty in types {
            for svc in self.services.iter().filter(|s| s.service_type == *ty) {
                for ep in &svc.endpoints {
                    let iface_ok = Interface::parse(&ep.interface) == Some(interface);
                    let region_ok = region.is_none_or(|r| ep.region.as_deref() == Some(r));
                    if iface_ok && region_ok {
                        return Url::parse(&ep.url).map_err(|e| {
                            BackendError::invalid(
                                Service::Identity,
                                format!("catalog endpoint of {ty} is not a URL: {e}"),
                            )
                        });
                    }
                    offered.push(format!(
                        "{ty} {} in {}",
                        ep.interface,
                        ep.region.as_deref().unwrap_or("no region")
                    ));
                }
            }
        }
        let region_text = region.map_or_else(|| "any region".to_owned(), |r| format!("region {r}"));
        let offered_text = if offered.is_empty() {
            "the catalog has no such service".to_owned()
        } else {
            format!("the catalog offers: {}", offered.join(", "))
        };
        Err(BackendError::not_found(
            Service::Identity,
            format!(
                "no {interface} endpoint for service type {} in {region_text}; {offered_text}",
                types.join("/"),
            ),
        ))
    }
}

/// A Keystone token and the identity it carries.
#[derive(Clone, Debug)]
pub struct Token {
    pub(crate) id: SecretString,
    /// When Keystone stops accepting it.
    pub expires_at: DateTime<Utc>,
    /// When it was issued.
    pub issued_at: Option<DateTime<Utc>>,
    /// The authentication methods (`password`, `application_credential`).
    pub methods: Vec<String>,
    /// The user's id.
    pub user_id: String,
    /// The user's name.
    pub user_name: Option<String>,
    /// The project's id.
    pub project_id: String,
    /// The project's name.
    pub project_name: Option<String>,
    /// Role names on the project.
    pub roles: Vec<String>,
    /// The application credential used, if any.
    pub application_credential_id: Option<String>,
    /// The service catalog.
    pub catalog: Catalog,
}

impl Token {
    /// The identity as the engine's request context.
    pub fn request_context(&self) -> RequestContext {
        RequestContext {
            user_id: self.user_id.as_str().into(),
            project_id: self.project_id.as_str().into(),
            roles: self.roles.clone(),
        }
    }

    /// Whether the token must be replaced at `now` given the refresh `margin`.
    pub fn needs_refresh(&self, now: DateTime<Utc>, margin: std::time::Duration) -> bool {
        let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        now.checked_add_signed(margin)
            .is_none_or(|deadline| deadline >= self.expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(types: &[(&str, &str)]) -> Catalog {
        Catalog {
            services: types
                .iter()
                .map(|(ty, url)| CatalogService {
                    service_type: (*ty).to_owned(),
                    name: None,
                    endpoints: vec![Endpoint {
                        interface: "public".into(),
                        region: Some("RegionOne".into()),
                        url: (*url).to_owned(),
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn block_storage_prefers_the_official_type_over_its_aliases() {
        let c = catalog(&[("volume", "http://old/v1"), ("volumev3", "http://new/v3/p")]);
        let url = c
            .endpoint(
                ServiceType::BlockStorage,
                Interface::Public,
                Some("RegionOne"),
            )
            .unwrap();
        assert_eq!(url.as_str(), "http://new/v3/p");
        let c = catalog(&[("volumev3", "http://v3/"), ("block-storage", "http://bs/")]);
        let url = c
            .endpoint(ServiceType::BlockStorage, Interface::Public, None)
            .unwrap();
        assert_eq!(url.as_str(), "http://bs/");
    }

    #[test]
    fn a_token_needs_refresh_only_inside_the_margin() {
        let now = DateTime::parse_from_rfc3339("2025-03-15T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let token = Token {
            id: SecretString::from("t".to_owned()),
            expires_at: now + chrono::Duration::seconds(300),
            issued_at: None,
            methods: vec![],
            user_id: "u".into(),
            user_name: None,
            project_id: "p".into(),
            project_name: None,
            roles: vec![],
            application_credential_id: None,
            catalog: Catalog::default(),
        };
        assert!(!token.needs_refresh(now, std::time::Duration::from_secs(120)));
        assert!(token.needs_refresh(now, std::time::Duration::from_secs(300)));
        assert!(token.needs_refresh(now, std::time::Duration::MAX));
    }
}
