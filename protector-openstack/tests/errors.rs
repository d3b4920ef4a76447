//! One test per error class: mapping to `BackendError` kinds and the retry policy.

use std::time::Duration;

use protector_core::ports::ManageVolume;
use protector_core::{Applied, BackendErrorKind};
use protector_openstack::{OpenStackSite, RetryPolicy};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::{fast_retries, ok_json, status_json, MockCloud};

fn manage_request() -> ManageVolume {
    ManageVolume {
        source_name: "volume-1-cinder".into(),
        host: "cinder-vol-1@pure-dr#pure-dr".into(),
        name: "v".into(),
        volume_type: None,
        bootable: false,
        description: None,
        metadata: Default::default(),
    }
}

#[tokio::test]
async fn a_400_is_invalid_and_keeps_novas_message() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(status_json(400, "nova/error_bad_request.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site.clients().compute.list_flavors().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Invalid);
    assert_eq!(err.status, Some(400));
    assert_eq!(
        err.message,
        "Block Device 7f3c2a53-7b8e-4d3c-9c8f-6f2f0b1a2c3d is not bootable."
    );
}

#[tokio::test]
async fn a_policy_refusal_is_forbidden_and_keeps_its_text() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.volume_path("/manageable_volumes")))
        .respond_with(status_json(403, "cinder/error_policy.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .block_storage
        .manage_volume(&manage_request())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Forbidden);
    assert_eq!(
        err.to_string(),
        "cinder forbidden (HTTP 403): Policy doesn't allow volume_extension:volume_manage to be performed. [request req-00000000-0000-4000-8000-0000000000e1]"
    );
}

#[tokio::test]
async fn a_409_is_a_conflict() {
    let cloud = MockCloud::start().await;
    Mock::given(method("DELETE"))
        .and(path(cloud.compute_path("/servers/s1")))
        .respond_with(status_json(409, "nova/error_conflict_stop.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .compute
        .delete_server(&"s1".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Conflict);
}

#[tokio::test]
async fn a_quota_413_is_throttled_and_not_retried() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/volumes/detail")))
        .respond_with(status_json(413, "cinder/error_quota.json").insert_header("retry-after", "0"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .block_storage
        .list_volumes()
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Throttled);
    assert_eq!(err.retry_after, Some(Duration::ZERO));
    assert!(err.message.starts_with("VolumeSizeExceedsAvailableQuota"));
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_even_for_a_post() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.volume_path("/manageable_volumes")))
        .respond_with(
            status_json(429, "nova/error_rate_limited.json").insert_header("retry-after", "1"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("POST"))
        .and(path(cloud.volume_path("/manageable_volumes")))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_string(crate::common::fixture("cinder/manage_response.json")),
        )
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let v = site
        .clients()
        .block_storage
        .manage_volume(&manage_request())
        .await
        .unwrap();
    assert_eq!(v.id.as_str(), "2b955850-f177-45f7-9f49-ecb2c256d161");
}

#[tokio::test]
async fn a_429_that_persists_is_throttled_with_its_retry_after() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(
            status_json(429, "nova/error_rate_limited.json").insert_header("retry-after", "0"),
        )
        .expect(3)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site.clients().compute.list_flavors().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Throttled);
    assert_eq!(err.status, Some(429));
    assert_eq!(err.retry_after, Some(Duration::ZERO));
    assert_eq!(err.message, "This request was rate-limited.");
}

#[tokio::test]
async fn a_503_on_a_get_is_retried_until_it_succeeds() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(
            ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"),
        )
        .up_to_n_times(2)
        .expect(2)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(ok_json("nova/flavors_detail.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    assert_eq!(
        site.clients().compute.list_flavors().await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn a_500_on_a_post_is_transient_maybe_applied_and_not_retried() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.compute_path("/servers/s1/action")))
        .respond_with(status_json(500, "nova/error_compute_fault.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .compute
        .stop_server(&"s1".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert_eq!(err.applied, Applied::Maybe);
    assert!(err.message.starts_with("Unexpected API Error."));
    assert!(err.to_string().contains("may have been applied"));
}

#[tokio::test]
async fn a_502_without_a_json_body_names_the_status() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(
            ResponseTemplate::new(502).set_body_string("<html><body>Bad Gateway</body></html>"),
        )
        .mount(&cloud.server)
        .await;
    let config = cloud
        .config()
        .retry_policy(RetryPolicy::no_retries())
        .build()
        .unwrap();
    let site = OpenStackSite::connect(config).await.unwrap();
    let err = site.clients().compute.list_flavors().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert_eq!(err.message, "HTTP 502 Bad Gateway");
    assert_eq!(err.applied, Applied::No);
}

#[tokio::test]
async fn a_timeout_is_transient_and_maybe_applied() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.compute_path("/servers/s1/action")))
        .respond_with(ResponseTemplate::new(202).set_delay(Duration::from_secs(3)))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let config = cloud
        .config()
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let site = OpenStackSite::connect(config).await.unwrap();
    let err = site
        .clients()
        .compute
        .stop_server(&"s1".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert_eq!(err.applied, Applied::Maybe);
}

#[tokio::test]
async fn connection_refused_is_transient_and_not_applied() {
    let cloud = MockCloud::bare().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let body = cloud.token_body("keystone/token_password.json").replace(
        &format!("{}/compute", cloud.base()),
        &format!("http://{dead}/compute"),
    );
    Mock::given(method("POST"))
        .and(path("/identity/v3/auth/tokens"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("x-subject-token", "t")
                .set_body_string(body),
        )
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .compute
        .stop_server(&"s1".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert_eq!(err.applied, Applied::No);
    assert!(err.message.contains("cannot connect"), "{}", err.message);
}

#[tokio::test]
async fn an_exhausted_retry_budget_stops_retries() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&cloud.server)
        .await;
    // Room for two retries in all: the first call makes 3 attempts and empties the
    // budget, the second call makes 1.
    let policy = RetryPolicy {
        budget_capacity: 10,
        retry_cost: 5,
        ..fast_retries().with_max_attempts(5)
    };
    let config = cloud.config().retry_policy(policy).build().unwrap();
    let site = OpenStackSite::connect(config).await.unwrap();
    site.clients().compute.list_flavors().await.unwrap_err();
    site.clients().compute.list_flavors().await.unwrap_err();
}

#[tokio::test]
async fn a_garbled_success_body_is_a_transient_error_not_a_panic() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/volumes/v1")))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"volume\": {\"id\": [1,"))
        .mount(&cloud.server)
        .await;
    let config = cloud
        .config()
        .retry_policy(RetryPolicy::no_retries())
        .build()
        .unwrap();
    let site = OpenStackSite::connect(config).await.unwrap();
    let err = site
        .clients()
        .block_storage
        .get_volume(&"v1".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert!(err.message.contains("cinder volume"), "{}", err.message);
}
