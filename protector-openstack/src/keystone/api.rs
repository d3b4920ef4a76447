//! Building `POST /v3/auth/tokens` bodies.

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::config::{ApplicationCredentialRef, AuthMethod, DomainRef, ProjectScope, UserRef};

fn domain(d: &DomainRef) -> Value {
    match d {
        DomainRef::Id(id) => json!({ "id": id }),
        DomainRef::Name(name) => json!({ "name": name }),
    }
}

fn user(u: &UserRef) -> Value {
    match u {
        UserRef::Id(id) => json!({ "id": id }),
        UserRef::Name { name, domain: d } => json!({ "name": name, "domain": domain(d) }),
    }
}

/// The request body for `auth`. It holds the secret: send it, never log it.
pub(crate) fn auth_body(auth: &AuthMethod) -> Value {
    match auth {
        AuthMethod::Password {
            user: u,
            password,
            project,
        } => {
            let mut user_obj = user(u);
            if let Value::Object(map) = &mut user_obj {
                map.insert(
                    "password".into(),
                    Value::String(password.expose_secret().to_owned()),
                );
            }
            let project = match project {
                ProjectScope::Id(id) => json!({ "id": id }),
                ProjectScope::Name { name, domain: d } => {
                    json!({ "name": name, "domain": domain(d) })
                }
            };
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": user_obj}},
                "scope": {"project": project}
            }})
        }
        AuthMethod::ApplicationCredential { id_or_name, secret } => {
            let mut cred = match id_or_name {
                ApplicationCredentialRef::Id(id) => json!({ "id": id }),
                ApplicationCredentialRef::Name { name, user: u } => {
                    json!({ "name": name, "user": user(u) })
                }
            };
            if let Value::Object(map) = &mut cred {
                map.insert(
                    "secret".into(),
                    Value::String(secret.expose_secret().to_owned()),
                );
            }
            json!({"auth": {"identity": {
                "methods": ["application_credential"],
                "application_credential": cred
            }}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CloudConfig;

    #[test]
    fn password_body_scopes_by_name_with_domains() {
        let cfg = CloudConfig::builder()
            .auth_url("http://k")
            .username("admin")
            .password("pw")
            .user_domain_name("Default")
            .project_name("admin")
            .project_domain_id("default")
            .build()
            .unwrap();
        let body = auth_body(cfg.auth());
        assert_eq!(
            body,
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": "admin", "domain": {"name": "Default"}, "password": "pw"}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
        );
    }

    #[test]
    fn application_credential_body_has_no_scope() {
        let cfg = CloudConfig::builder()
            .auth_url("http://k")
            .application_credential_id("ac1")
            .application_credential_secret("s")
            .build()
            .unwrap();
        let body = auth_body(cfg.auth());
        assert!(body["auth"].get("scope").is_none());
        assert_eq!(
            body["auth"]["identity"]["application_credential"]["id"],
            "ac1"
        );
    }
}
