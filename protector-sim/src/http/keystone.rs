//! Keystone v3: version document and `/v3/auth/tokens`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Duration;
use serde_json::{json, Value};

use super::common::{iso_z, unauthorized, with_headers, IssuedToken, SiteState};

type St = Arc<SiteState>;

pub(crate) fn router(state: St) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route(
            "/v3/auth/tokens",
            get(validate).head(validate).delete(revoke).post(issue),
        )
        .route("/v3/auth/catalog", get(catalog_of_caller))
        .with_state(state)
}

fn version_doc(s: &SiteState) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/", s.endpoints.auth_url)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
    })
}

async fn root(State(s): State<St>) -> Response {
    let body = json!({"versions": {"values": [version_doc(&s)]}});
    respond(&s, StatusCode::MULTIPLE_CHOICES, body)
}

async fn version(State(s): State<St>) -> Response {
    let body = json!({ "version": version_doc(&s) });
    respond(&s, StatusCode::OK, body)
}

fn respond(s: &SiteState, status: StatusCode, body: Value) -> Response {
    with_headers(
        (status, Json(body)).into_response(),
        &[("x-openstack-request-id", s.request_id())],
    )
}

fn error(s: &SiteState, status: StatusCode, title: &str, message: &str) -> Response {
    let mut resp = respond(
        s,
        status,
        json!({"error": {"code": status.as_u16(), "title": title, "message": message}}),
    );
    if status == StatusCode::UNAUTHORIZED {
        if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{}\"", s.endpoints.auth_url))
        {
            resp.headers_mut().insert("www-authenticate", v);
        }
    }
    resp
}

fn auth_failed(s: &SiteState) -> Response {
    error(
        s,
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "The request you have made requires authentication.",
    )
}

fn bad_request(s: &SiteState, message: &str) -> Response {
    error(s, StatusCode::BAD_REQUEST, "Bad Request", message)
}

/// A user referenced by id or by name (a name needs its domain).
fn resolve_user(s: &SiteState, user: &Value) -> Result<Option<String>, String> {
    let info = s.world.site(s.site);
    if let Some(id) = user.get("id").and_then(Value::as_str) {
        return Ok(info
            .users
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.clone()));
    }
    let name = user
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| "Expecting to find id or name in user.".to_owned())?;
    if user.get("domain").is_none() {
        return Err("Expecting to find domain in user.".to_owned());
    }
    Ok(info.users.contains_key(name).then(|| name.to_owned()))
}

fn resolve_project(s: &SiteState, project: &Value) -> Result<Option<String>, String> {
    let info = s.world.site(s.site);
    if let Some(id) = project.get("id").and_then(Value::as_str) {
        return Ok(info
            .projects
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.clone()));
    }
    let name = project
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| "Expecting to find id or name in project.".to_owned())?;
    if project.get("domain").is_none() {
        return Err("Expecting to find domain in project.".to_owned());
    }
    Ok(info.projects.contains_key(name).then(|| name.to_owned()))
}

async fn issue(
    State(s): State<St>,
    Query(query): Query<std::collections::BTreeMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request(&s, "The request body is not valid JSON.");
    };
    let Some(identity) = body.pointer("/auth/identity") else {
        return bad_request(&s, "Expecting to find identity in auth.");
    };
    let methods: Vec<String> = identity
        .get("methods")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let scope = body.pointer("/auth/scope");
    let creds = Arc::clone(&s.credentials);
    let (user, project, app_cred) = if methods.iter().any(|m| m == "password") {
        let Some(user) = identity.pointer("/password/user") else {
            return bad_request(&s, "Expecting to find user in password.");
        };
        let name = match resolve_user(&s, user) {
            Ok(Some(n)) => n,
            Ok(None) => return auth_failed(&s),
            Err(m) => return bad_request(&s, &m),
        };
        let given = user.get("password").and_then(Value::as_str);
        if given.is_none() || given != creds.password(&name) {
            return auth_failed(&s);
        }
        let Some(project) = scope.and_then(|sc| sc.get("project")) else {
            return bad_request(
                &s,
                "This simulator issues project-scoped tokens only; give scope.project.",
            );
        };
        let project = match resolve_project(&s, project) {
            Ok(Some(p)) => p,
            Ok(None) => return auth_failed(&s),
            Err(m) => return bad_request(&s, &m),
        };
        (name, project, None)
    } else if methods.iter().any(|m| m == "application_credential") {
        if scope.is_some() {
            return error(
                &s,
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Application credentials cannot request a scope.",
            );
        }
        let Some(ac) = identity.get("application_credential") else {
            return bad_request(&s, "Expecting to find application_credential in identity.");
        };
        let found = if let Some(id) = ac.get("id").and_then(Value::as_str) {
            creds.app_credential_by_id(id)
        } else {
            let user = ac.get("user").map(|u| resolve_user(&s, u));
            match (ac.get("name").and_then(Value::as_str), user) {
                (Some(n), Some(Ok(Some(u)))) => creds.app_credential_by_name(n, &u),
                (_, Some(Err(m))) => return bad_request(&s, &m),
                (None, _) | (_, None) => {
                    return bad_request(
                        &s,
                        "Expecting to find id, or name and user in application_credential.",
                    )
                }
                _ => None,
            }
        };
        let Some(found) = found else {
            return auth_failed(&s);
        };
        if ac.get("secret").and_then(Value::as_str) != Some(found.secret.as_str()) {
            return auth_failed(&s);
        }
        (
            found.user.clone(),
            found.project.clone(),
            Some((found.id.clone(), found.name.clone())),
        )
    } else {
        return auth_failed(&s);
    };
    let ctx = match s.world.context(s.site, &project, &user) {
        Ok(ctx) => ctx,
        Err(_) => return auth_failed(&s),
    };
    if let Err(e) = s.world.issue_token(s.site, &ctx).await {
        let status = super::common::status_of(&e);
        if status == StatusCode::UNAUTHORIZED {
            return auth_failed(&s);
        }
        return error(&s, status, "Error", &e.message);
    }
    let issued_at = s.wall.now();
    let expires_at = issued_at + Duration::seconds(3600);
    let default_domain = json!({"id": "default", "name": "Default"});
    let mut token = json!({
        "methods": if app_cred.is_some() { vec!["application_credential"] } else { vec!["password"] },
        "issued_at": iso_z(issued_at),
        "expires_at": iso_z(expires_at),
        "audit_ids": [format!("{:x}", s.world.seed() ^ issued_at.timestamp_micros() as u64)],
        "user": {"id": ctx.user_id.as_str(), "name": user, "domain": default_domain, "password_expires_at": null},
        "project": {"id": ctx.project_id.as_str(), "name": project, "domain": default_domain},
        "roles": ctx.roles.iter().map(|r| json!({"id": format!("role-{r}"), "name": r})).collect::<Vec<_>>(),
        "is_domain": false,
    });
    if let Some((id, name)) = &app_cred {
        token["application_credential"] = json!({"id": id, "name": name, "restricted": true});
    }
    if !query.contains_key("nocatalog") {
        token["catalog"] = catalog(&s, ctx.project_id.as_str());
    }
    let body = json!({ "token": token });
    let id = s.store_token(IssuedToken {
        ctx,
        body: body.clone(),
        expires_at,
    });
    with_headers(
        respond(&s, StatusCode::CREATED, body),
        &[("x-subject-token", id)],
    )
}

fn catalog(s: &SiteState, project_id: &str) -> Value {
    let region = &s.world.site(s.site).region_name;
    let e = &s.endpoints;
    let service = |ty: &str, name: &str, url: String| {
        let endpoints: Vec<Value> = ["public", "internal", "admin"]
            .iter()
            .map(|i| {
                json!({
                    "id": format!("{ty}-{i}"), "interface": i,
                    "region": region, "region_id": region, "url": url,
                })
            })
            .collect();
        json!({"type": ty, "name": name, "id": format!("{name}-{ty}"), "endpoints": endpoints})
    };
    let identity = e.auth_url.trim_end_matches("/v3").to_owned();
    json!([
        service("identity", "keystone", identity),
        service("compute", "nova", format!("{}/v2.1", e.compute)),
        service(
            "volumev3",
            "cinderv3",
            format!("{}/v3/{project_id}", e.block_storage)
        ),
        service(
            "block-storage",
            "cinder",
            format!("{}/v3/{project_id}", e.block_storage)
        ),
        service("network", "neutron", e.network.clone()),
    ])
}

async fn validate(State(s): State<St>, headers: HeaderMap) -> Response {
    if s.authenticate(&headers).is_none() {
        return unauthorized(&s.endpoints.auth_url);
    }
    let subject = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| s.token(id).map(|t| (id.to_owned(), t)));
    match subject {
        Some((id, t)) => with_headers(
            respond(&s, StatusCode::OK, t.body),
            &[("x-subject-token", id)],
        ),
        None => error(
            &s,
            StatusCode::NOT_FOUND,
            "Not Found",
            "Could not find token.",
        ),
    }
}

async fn revoke(State(s): State<St>, headers: HeaderMap) -> Response {
    if s.authenticate(&headers).is_none() {
        return unauthorized(&s.endpoints.auth_url);
    }
    let subject = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if s.revoke(subject) {
        with_headers(
            StatusCode::NO_CONTENT.into_response(),
            &[("x-openstack-request-id", s.request_id())],
        )
    } else {
        error(
            &s,
            StatusCode::NOT_FOUND,
            "Not Found",
            "Could not find token.",
        )
    }
}

async fn catalog_of_caller(State(s): State<St>, headers: HeaderMap) -> Response {
    match s.authenticate(&headers) {
        Some(t) => respond(
            &s,
            StatusCode::OK,
            json!({"catalog": catalog(&s, t.ctx.project_id.as_str())}),
        ),
        None => unauthorized(&s.endpoints.auth_url),
    }
}
