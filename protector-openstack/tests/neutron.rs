//! Neutron against wiremock.

use protector_core::BackendErrorKind;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::common::{json_fixture, ok_json, status_json, MockCloud, PROJECT_ID};

const NET: &str = "3cb9bc59-5699-4588-a4b1-b87f96708bc6";

#[tokio::test]
async fn get_network_appends_v2_0_to_the_unversioned_endpoint() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/network/v2.0/networks/{NET}")))
        .respond_with(ok_json("neutron/network_get.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let n = site
        .clients()
        .networking
        .get_network(&NET.into())
        .await
        .unwrap();
    assert_eq!(n.name, "net-secondary-web");
    assert_eq!(n.status, "ACTIVE");
    assert!(n.admin_state_up && !n.shared);
    assert_eq!(n.project_id.as_ref().map(|p| p.as_str()), Some(PROJECT_ID));
    assert_eq!(n.subnets, vec!["54d6f61d-db07-451c-9ab3-b9609b6b6f0b"]);
}

#[tokio::test]
async fn list_networks_follows_the_next_link() {
    let cloud = MockCloud::start().await;
    let template = json_fixture("neutron/network_get.json")["network"].clone();
    let net = |id: &str| {
        let mut n = template.clone();
        n["id"] = json!(id);
        n
    };
    Mock::given(method("GET"))
        .and(path(cloud.network_path("/networks")))
        .and(query_param("marker", "n2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "networks": [net("n3")],
            "networks_links": [{"rel": "previous", "href": format!("{}/network/v2.0/networks?limit=2&marker=n3&page_reverse=True", cloud.base())}]})))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.network_path("/networks")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "networks": [net("n1"), net("n2")],
            "networks_links": [{"rel": "next", "href": format!("{}/network/v2.0/networks?limit=2&marker=n2", cloud.base())}]})))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let ids: Vec<_> = site
        .clients()
        .networking
        .list_networks()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id.into_string())
        .collect();
    assert_eq!(ids, vec!["n1", "n2", "n3"]);
}

#[tokio::test]
async fn a_missing_network_is_not_found_with_neutrons_message() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.network_path(
            "/networks/00000000-0000-4000-8000-00000000dead",
        )))
        .respond_with(status_json(404, "neutron/error_network_not_found.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .networking
        .get_network(&"00000000-0000-4000-8000-00000000dead".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    assert_eq!(
        err.message,
        "Network 00000000-0000-4000-8000-00000000dead could not be found."
    );
}

#[tokio::test]
async fn a_neutron_policy_refusal_is_forbidden_and_keeps_its_text() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.network_path(&format!("/networks/{NET}"))))
        .respond_with(status_json(403, "neutron/error_policy.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .networking
        .get_network(&NET.into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Forbidden);
    assert_eq!(err.message, "(rule:get_network) is disallowed by policy");
}
