//! Keystone v3 against wiremock: auth bodies, token caching and refresh, 401 handling,
//! catalog endpoint selection.

use std::time::Duration;

use protector_core::BackendErrorKind;
use protector_openstack::{OpenStackSite, ServiceType, Session};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::Mock;

use crate::common::{ok_json, status_json, MockCloud, PASSWORD, PROJECT_ID, TOKEN, USER_ID};

#[tokio::test]
async fn password_auth_posts_a_project_scoped_body_and_uses_the_subject_token() {
    let cloud = MockCloud::bare().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "dr-bot", "domain": {"name": "Default"}, "password": PASSWORD}}},
            "scope": {"project": {"name": "dr", "domain": {"name": "Default"}}}}})))
        .respond_with(cloud.token_response(TOKEN, "keystone/token_password.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(
            "/servers/0e44cc9c-e052-415d-afbf-469b0d384170",
        )))
        .and(header("x-auth-token", TOKEN))
        .respond_with(ok_json("nova/server_get.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(
            "/servers/0e44cc9c-e052-415d-afbf-469b0d384170/os-interface",
        )))
        .respond_with(ok_json("nova/os_interface.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let server = site
        .clients()
        .compute
        .get_server(&"0e44cc9c-e052-415d-afbf-469b0d384170".into())
        .await
        .unwrap();
    assert_eq!(server.name, "db-01");
}

#[tokio::test]
async fn the_token_identity_is_exposed_as_a_request_context() {
    let cloud = MockCloud::start().await;
    let site = cloud.site().await;
    let ctx = site.request_context().await.unwrap();
    assert_eq!(ctx.user_id.as_str(), USER_ID);
    assert_eq!(ctx.project_id.as_str(), PROJECT_ID);
    assert_eq!(ctx.roles, vec!["reader", "member", "admin"]);
    assert!(ctx.is_admin());
}

#[tokio::test]
async fn application_credential_auth_sends_no_scope_and_reads_the_credential_scope() {
    let cloud = MockCloud::bare().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .and(body_json(json!({"auth": {"identity": {
            "methods": ["application_credential"],
            "application_credential": {"id": "423f19a4ac1e4f48bbb4180756e6eb6c", "secret": "rEaqvJka48mpv"}}}})))
        .respond_with(cloud.token_response("tok-ac", "keystone/token_application_credential.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let config = protector_openstack::CloudConfig::builder()
        .auth_url(format!("{}/identity/v3/", cloud.base()))
        .application_credential_id("423f19a4ac1e4f48bbb4180756e6eb6c")
        .application_credential_secret("rEaqvJka48mpv")
        .clock(cloud.clock.clone())
        .build()
        .unwrap();
    let session = Session::connect(config).await.unwrap();
    let token = session.token().await.unwrap();
    assert_eq!(token.methods, vec!["application_credential"]);
    assert_eq!(
        token.application_credential_id.as_deref(),
        Some("423f19a4ac1e4f48bbb4180756e6eb6c")
    );
    assert_eq!(token.project_id, PROJECT_ID);
}

#[tokio::test]
async fn the_token_is_cached_between_calls() {
    let cloud = MockCloud::bare().await;
    cloud
        .mount_token(TOKEN, "keystone/token_password.json", Some(1))
        .await;
    let session = Session::connect(cloud.config().build().unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        session.endpoint(ServiceType::Compute).await.unwrap();
    }
}

#[tokio::test]
async fn the_token_is_replaced_once_the_clock_enters_the_refresh_margin() {
    let cloud = MockCloud::bare().await;
    cloud
        .mount_token(TOKEN, "keystone/token_password.json", Some(2))
        .await;
    let config = cloud
        .config()
        .token_refresh_margin(Duration::from_secs(300))
        .build()
        .unwrap();
    let session = Session::connect(config).await.unwrap();
    let first = session.token().await.unwrap();
    // 54 minutes in: 6 minutes left, more than the 5-minute margin.
    cloud.clock.advance(Duration::from_secs(54 * 60));
    let same = session.token().await.unwrap();
    assert_eq!(same.expires_at, first.expires_at);
    // 56 minutes in: 4 minutes left, inside the margin.
    cloud.clock.advance(Duration::from_secs(2 * 60));
    let fresh = session.token().await.unwrap();
    assert!(fresh.expires_at > first.expires_at);
}

#[tokio::test]
async fn a_401_from_a_service_reauthenticates_once_and_repeats_the_call() {
    let cloud = MockCloud::bare().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(cloud.token_response("tok-old", "keystone/token_password.json"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(cloud.token_response("tok-new", "keystone/token_password.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .and(header("x-auth-token", "tok-old"))
        .respond_with(status_json(401, "keystone/error_unauthorized.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .and(header("x-auth-token", "tok-new"))
        .respond_with(ok_json("nova/flavors_detail.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let flavors = site.clients().compute.list_flavors().await.unwrap();
    assert_eq!(flavors.len(), 2);
}

#[tokio::test]
async fn a_second_401_after_reauthenticating_is_an_auth_error() {
    let cloud = MockCloud::bare().await;
    cloud
        .mount_token(TOKEN, "keystone/token_password.json", Some(2))
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(status_json(401, "keystone/error_unauthorized.json"))
        .expect(2)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site.clients().compute.list_flavors().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Auth);
    assert_eq!(
        err.message,
        "The request you have made requires authentication."
    );
}

#[tokio::test]
async fn auth_url_with_or_without_v3_and_trailing_slash_reaches_the_tokens_endpoint() {
    let cloud = MockCloud::bare().await;
    cloud
        .mount_token(TOKEN, "keystone/token_password.json", Some(4))
        .await;
    for suffix in ["/identity", "/identity/", "/identity/v3", "/identity/v3/"] {
        let config = cloud
            .config()
            .auth_url(format!("{}{suffix}", cloud.base()))
            .build()
            .unwrap();
        Session::connect(config).await.unwrap();
    }
}

#[tokio::test]
async fn bad_credentials_are_an_auth_error_with_keystones_message() {
    let cloud = MockCloud::bare().await;
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(
            status_json(401, "keystone/error_unauthorized.json")
                .insert_header("www-authenticate", "Keystone uri=\"http://k/identity\""),
        )
        .expect(1)
        .mount(&cloud.server)
        .await;
    let err = OpenStackSite::connect(cloud.config().build().unwrap())
        .await
        .unwrap_err();
    let protector_openstack::Error::Backend(e) = err else {
        panic!("expected a backend error, got {err}");
    };
    assert_eq!(e.kind, BackendErrorKind::Auth);
    assert_eq!(e.service, protector_core::Service::Identity);
    assert_eq!(e.status, Some(401));
    assert!(e.message.contains("requires authentication"));
}

#[tokio::test]
async fn endpoints_are_picked_by_interface_and_region() {
    let cloud = MockCloud::start().await;
    let internal = Session::connect(cloud.config().interface("internal").build().unwrap())
        .await
        .unwrap();
    let url = internal.endpoint(ServiceType::Compute).await.unwrap();
    assert_eq!(url.path(), "/compute-internal/v2.1");
    let two = Session::connect(cloud.config().region_name("RegionTwo").build().unwrap())
        .await
        .unwrap();
    assert_eq!(
        two.endpoint(ServiceType::Compute).await.unwrap().path(),
        "/compute-two/v2.1"
    );
    let block = two.endpoint(ServiceType::BlockStorage).await.unwrap_err();
    assert_eq!(block.kind, BackendErrorKind::NotFound);
    assert!(
        block.message.contains("block-storage/volumev3/volume")
            && block.message.contains("RegionTwo")
            && block.message.contains("volumev3 public in RegionOne"),
        "{}",
        block.message
    );
}

#[tokio::test]
async fn a_catalog_without_the_service_gives_an_error_naming_what_was_asked() {
    let cloud = MockCloud::bare().await;
    cloud
        .mount_token(TOKEN, "keystone/token_application_credential.json", None)
        .await;
    let site = cloud.site().await;
    let err = site.clients().networking.list_networks().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    assert_eq!(
        err.message,
        "no public endpoint for service type network in region RegionOne; the catalog has no such service"
    );
}

#[tokio::test]
async fn keystone_unreachable_is_transient_and_not_applied() {
    let cloud = MockCloud::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = cloud
        .config()
        .auth_url(format!("http://{dead}/v3"))
        .retry_policy(protector_openstack::RetryPolicy::no_retries())
        .build()
        .unwrap();
    let Err(protector_openstack::Error::Backend(e)) = Session::connect(config).await else {
        panic!("expected a backend error");
    };
    assert_eq!(e.kind, BackendErrorKind::Transient);
    assert_eq!(e.applied, protector_core::Applied::No);
}
