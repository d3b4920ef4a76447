//! `OpenStackConnector` against wiremock: lazy authentication, one session shared by
//! every use and clone, failures not remembered, configuration errors as backend errors.

use protector_core::ports::SiteConnector;
use protector_core::{BackendErrorKind, RequestContext, Service};
use protector_openstack::OpenStackConnector;
use serde_json::json;
use wiremock::matchers::{method, path};
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
    let connector = OpenStackConnector::new(cloud.config().build().unwrap());

    let refused = connector.connect(&caller()).await.unwrap_err();
    assert_eq!(refused.kind, BackendErrorKind::Auth, "{refused}");
    assert_eq!(refused.service, Service::Identity);
    assert_eq!(refused.status, Some(401));
    assert!(!refused.to_string().contains(PASSWORD));

    connector.probe().await.unwrap();
    connector.connect(&caller()).await.unwrap();
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
