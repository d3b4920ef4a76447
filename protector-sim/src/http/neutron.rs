//! Neutron v2.0: networks.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use protector_core::ids::NetworkId;
use protector_core::ports::{Network, Networking};
use protector_core::{BackendError, BackendErrorKind, RequestContext};
use serde_json::{json, Value};

use super::common::{
    next_link, paginate, parse_limit, status_of, unauthorized, with_headers, Refusal, SiteState,
};

type St = Arc<SiteState>;
type Q = Query<BTreeMap<String, String>>;

pub(crate) fn router(state: St) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v2.0/networks", get(list_networks))
        .route("/v2.0/networks/{id}", get(get_network))
        .with_state(state)
}

async fn versions(State(s): State<St>) -> Response {
    let body = json!({"versions": [{"id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/v2.0/", s.endpoints.network)}]}]});
    reply(&s, StatusCode::OK, body)
}

fn reply(s: &SiteState, status: StatusCode, body: Value) -> Response {
    with_headers(
        (status, Json(body)).into_response(),
        &[("x-openstack-request-id", s.request_id())],
    )
}

fn neutron_error(s: &SiteState, status: StatusCode, kind: &str, message: &str) -> Response {
    reply(
        s,
        status,
        json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}),
    )
}

fn backend(s: &SiteState, e: &BackendError) -> Response {
    let kind = match e.kind {
        BackendErrorKind::NotFound => "NetworkNotFound",
        BackendErrorKind::Forbidden => "PolicyNotAuthorized",
        BackendErrorKind::Conflict => "Conflict",
        BackendErrorKind::Invalid => "BadRequest",
        BackendErrorKind::Auth => "NotAuthorized",
        BackendErrorKind::Throttled => "OverQuota",
        BackendErrorKind::Transient => "ServiceUnavailable",
        _ => "HTTPInternalServerError",
    };
    neutron_error(s, status_of(e), kind, &e.message)
}

fn begin(s: &SiteState, headers: &HeaderMap) -> Result<RequestContext, Refusal> {
    s.authenticate(headers)
        .map(|t| t.ctx)
        .ok_or_else(|| Box::new(unauthorized(&s.endpoints.auth_url)))
}

fn view(n: &Network) -> Value {
    json!({
        "id": n.id.as_str(), "name": n.name, "status": n.status,
        "admin_state_up": n.admin_state_up, "shared": n.shared,
        "project_id": n.project_id.as_ref().map(|p| p.as_str()),
        "tenant_id": n.project_id.as_ref().map(|p| p.as_str()),
        "subnets": n.subnets, "router:external": false, "mtu": 1450,
        "port_security_enabled": true, "availability_zones": ["nova"],
    })
}

async fn list_networks(State(s): State<St>, headers: HeaderMap, Query(q): Q) -> Response {
    let ctx = match begin(&s, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let limit = match parse_limit(&q) {
        Ok(l) => l,
        Err(m) => return neutron_error(&s, StatusCode::BAD_REQUEST, "HTTPBadRequest", &m),
    };
    let networks = match s.world.networking(s.site, &ctx).list_networks().await {
        Ok(n) => n,
        Err(e) => return backend(&s, &e),
    };
    let networks: Vec<Network> = networks
        .into_iter()
        .filter(|n| q.get("name").is_none_or(|x| &n.name == x))
        .filter(|n| q.get("id").is_none_or(|x| n.id.as_str() == x))
        .collect();
    let (page, next) = match paginate(networks, q.get("marker").map(String::as_str), limit, |n| {
        n.id.to_string()
    }) {
        Ok(p) => p,
        Err(m) => return neutron_error(&s, StatusCode::BAD_REQUEST, "HTTPBadRequest", &m),
    };
    let mut body = json!({"networks": page.iter().map(view).collect::<Vec<_>>()});
    if let Some(m) = next {
        body["networks_links"] =
            next_link(&format!("{}/v2.0/networks", s.endpoints.network), limit, &m);
    }
    reply(&s, StatusCode::OK, body)
}

async fn get_network(State(s): State<St>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let ctx = match begin(&s, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    match s
        .world
        .networking(s.site, &ctx)
        .get_network(&NetworkId::from(id))
        .await
    {
        Ok(n) => reply(&s, StatusCode::OK, json!({"network": view(&n)})),
        Err(e) => backend(&s, &e),
    }
}
