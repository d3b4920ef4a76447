//! Keystone's JSON shapes and their parsers.

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;

use super::{Catalog, CatalogService, Endpoint, Token};
use crate::error::ParseError;

#[derive(Deserialize)]
struct TokenEnvelope {
    token: TokenDto,
}

#[derive(Deserialize)]
struct TokenDto {
    expires_at: String,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    user: NamedDto,
    #[serde(default)]
    project: Option<NamedDto>,
    #[serde(default)]
    roles: Vec<NamedDto>,
    #[serde(default)]
    application_credential: Option<NamedDto>,
    #[serde(default)]
    catalog: Vec<ServiceDto>,
}

#[derive(Deserialize)]
struct NamedDto {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct ServiceDto {
    #[serde(rename = "type")]
    service_type: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    endpoints: Vec<EndpointDto>,
}

#[derive(Deserialize)]
struct EndpointDto {
    interface: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

/// Parses Keystone's ISO-8601 timestamps (`…Z`, an offset, or naive UTC).
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Parses a `POST /v3/auth/tokens` body; the token id (from `X-Subject-Token`) is left
/// empty.
///
/// # Errors
/// [`ParseError`] when the body is not a token or a timestamp is unreadable, or the
/// token is not scoped to a project.
pub fn parse_token(body: &[u8]) -> Result<Token, ParseError> {
    let env: TokenEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("keystone token", &e))?;
    let t = env.token;
    let expires_at = parse_timestamp(&t.expires_at)
        .ok_or_else(|| ParseError::new("keystone token", "expires_at is not an ISO-8601 time"))?;
    let project = t
        .project
        .ok_or_else(|| ParseError::new("keystone token", "the token is not scoped to a project"))?;
    Ok(Token {
        id: SecretString::from(String::new()),
        expires_at,
        issued_at: t.issued_at.as_deref().and_then(parse_timestamp),
        methods: t.methods,
        user_id: t.user.id,
        user_name: t.user.name,
        project_id: project.id,
        project_name: project.name,
        roles: t.roles.into_iter().filter_map(|r| r.name).collect(),
        application_credential_id: t.application_credential.map(|a| a.id),
        catalog: Catalog {
            services: t
                .catalog
                .into_iter()
                .map(|s| CatalogService {
                    service_type: s.service_type,
                    name: s.name,
                    endpoints: s
                        .endpoints
                        .into_iter()
                        .map(|e| Endpoint {
                            interface: e.interface,
                            region: e.region_id.or(e.region),
                            url: e.url,
                        })
                        .collect(),
                })
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_zone_parse_as_utc() {
        let z = parse_timestamp("2015-11-07T02:58:43.578887Z").unwrap();
        let naive = parse_timestamp("2015-11-07T02:58:43.578887").unwrap();
        assert_eq!(z, naive);
    }

    #[test]
    fn an_unscoped_token_is_refused() {
        let body = br#"{"token": {"expires_at": "2030-01-01T00:00:00Z", "user": {"id": "u"}}}"#;
        let err = parse_token(body).unwrap_err();
        assert!(err.to_string().contains("not scoped"));
    }
}
