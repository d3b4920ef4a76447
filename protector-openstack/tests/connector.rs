//! `OpenStackConnector` against wiremock: lazy authentication, one session shared by
//! every use and clone, failures not remembered, configuration errors as backend errors.

use protector_core::ports::SiteConnector;
use protector_core::{BackendErrorKind, RequestContext, Service};
use protector_openstack::OpenStackConnector;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::{status_json, MockCloud, PASSWORD, PROJECT_ID, TOKEN, USER_ID};

fn caller() -> RequestContext {
    RequestContext::new(USER_ID, PROJECT_ID, &["member"])
}

#[tokio::test]
async fn a_connector_authenticates_on_first_use_only_and_its_clones_share_the_session() {
    let cloud = MockCloud::bare().await;
    cloud
        .mount_token(TOKEN, "keystone/token_password.json", Some(1))
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.network_path("/networks")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"networks": []})))
        .mount(&cloud.server)
        .await;
    // Each probe asks Keystone to validate the cached token.
    Mock::given(method("HEAD"))
        .and(path("/identity/v3/auth/tokens"))
        .and(header("X-Auth-Token", TOKEN))
        .and(header("X-Subject-Token", TOKEN))
        .respond_with(ResponseTemplate::new(200))
        .expect(2)
        .mount(&cloud.server)
        .await;
    let connector = OpenStackConnector::new(cloud.config().build().unwrap());
    assert!(
        cloud.server.received_requests().await.unwrap().is_empty(),
        "building a connector must not call Keystone"
    );
    assert!(format!("{connector:?}").contains("connected: false"));

    connector.probe().await.unwrap();
    let clients = connector.connect(&caller()).await.unwrap();
    clients.networking.list_networks().await.unwrap();
    let clone = connector.clone();
    clone.connect(&caller()).await.unwrap();
    clone.probe().await.unwrap();
    assert!(format!("{connector:?}").contains("connected: true"));
    let ctx = connector
        .site()
        .await
        .unwrap()
        .request_context()
        .await
        .unwrap();
    assert_eq!(ctx.project_id.as_str(), PROJECT_ID);
    // `expect(1)` on the token mock is verified when the server drops.
}

#[tokio::test]
async fn a_refused_authentication_is_reported_and_tried_again_on_the_next_use() {
    let cloud = MockCloud::bare().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(status_json(401, "keystone/error_unauthorized.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&cloud.server)
        .await;
    cloud
        .mount_token(TOKEN, "keystone/token_password.json", Some(1))
        .await;
    Mock::given(method("HEAD"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&cloud.server)
        .await;
    let connector = OpenStackConnector::new(cloud.config().build().unwrap());

    let refused = connector.connect(&caller()).await.unwrap_err();
    assert_eq!(refused.kind, BackendErrorKind::Auth, "{refused}");
    assert_eq!(refused.service, Service::Identity);
    assert_eq!(refused.status, Some(401));
    assert!(!refused.to_string().contains(PASSWORD));

    connector.probe().await.unwrap();
    connector.connect(&caller()).await.unwrap();
}

/// A cached token says nothing about whether the site is up: a probe after Keystone
/// stopped answering fails, and one after Keystone forgot the token authenticates anew.
#[tokio::test]
async fn a_probe_with_a_cached_token_still_asks_keystone() {
    let cloud = MockCloud::bare().await;
    cloud
        .mount_token(TOKEN, "keystone/token_password.json", Some(2))
        .await;
    Mock::given(method("HEAD"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(200))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(404))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&cloud.server)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(3)
        .mount(&cloud.server)
        .await;
    let connector = OpenStackConnector::new(
        cloud
            .config()
            .retry_policy(protector_openstack::RetryPolicy::no_retries())
            .build()
            .unwrap(),
    );
    // First probe: authenticates, then Keystone validates the token.
    connector.probe().await.unwrap();
    // Second: Keystone no longer knows the token (404): a new one is issued.
    connector.probe().await.unwrap();
    // Third: Keystone answers 503, whatever the cached token.
    let down = connector.probe().await.unwrap_err();
    assert_eq!(down.service, Service::Identity);
    assert_eq!(down.status, Some(503), "{down}");
    assert!(!down.to_string().contains(TOKEN));
    // `expect(2)`-style check: exactly two token requests were made.
    let posts = cloud
        .server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST")
        .count();
    assert_eq!(posts, 2);
}

#[tokio::test]
async fn an_unreadable_ca_bundle_is_an_invalid_identity_error_naming_the_file() {
    let cloud = MockCloud::start().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let connector = OpenStackConnector::new(cloud.config().cacert(&missing).build().unwrap());
    let err = connector.probe().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Invalid, "{err}");
    assert_eq!(err.service, Service::Identity);
    assert!(
        err.message.contains(&missing.display().to_string()),
        "{}",
        err.message
    );
    assert!(cloud.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_connectors_debug_names_the_cloud_and_no_secret() {
    let cloud = MockCloud::start().await;
    let connector = OpenStackConnector::new(cloud.config().build().unwrap());
    connector.probe().await.unwrap();
    let shown = format!("{connector:?}");
    assert!(shown.contains("mock"), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
}
