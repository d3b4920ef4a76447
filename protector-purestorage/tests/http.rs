//! The REST client against a mock array: one test per endpoint shape and per error
//! class, with bodies shaped like a FlashArray's (`tests/fixtures`). Real time, real
//! sockets.

use std::sync::Arc;
use std::time::Duration;

use protector_core::{Applied, BackendErrorKind, IdGenerator};
use protector_purestorage::{
    FlashArray, FlashArrayClient, PgSnapshotOptions, PgSnapshotQuery, ReplicationSchedule,
    RetryPolicy, SnapshotOrder, VolumeQuery, VolumeSnapshotQuery,
};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{
    body_partial_json, header, header_exists, method, path, query_param, query_param_is_missing,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_TOKEN: &str = "api-token-SECRET-5f1c2a9e";
const SESSION: &str = "session-SECRET-8d7e6f5a";
const V: &str = "/api/2.36";

fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ok(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(fixture(name))
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..RetryPolicy::default()
    }
}

/// A mock array that negotiates 2.36 and accepts [`API_TOKEN`] (exactly `logins`
/// times when given).
async fn array(logins: Option<u64>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/api_version"))
        .respond_with(ok("api_version.json"))
        .mount(&server)
        .await;
    let login = Mock::given(method("POST"))
        .and(path(format!("{V}/login")))
        .and(header("api-token", API_TOKEN))
        .respond_with(ok("login.json").insert_header("x-auth-token", SESSION));
    match logins {
        Some(n) => login.expect(n).mount(&server).await,
        None => login.mount(&server).await,
    }
    server
}

fn client(server: &MockServer) -> FlashArrayClient {
    client_with(server, fast_retries())
}

fn client_with(server: &MockServer, retry: RetryPolicy) -> FlashArrayClient {
    FlashArrayClient::builder(server.uri(), SecretString::from(API_TOKEN))
        .retry_policy(retry)
        .id_generator(Arc::new(IdGenerator::seeded(42)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn negotiates_the_highest_2x_version_both_sides_know() {
    let server = array(Some(1)).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(ok("arrays.json"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(c.api_version().await.unwrap(), "2.36");
    let info = c.array_info().await.unwrap();
    assert_eq!(info.name, "array-a");
    assert_eq!(info.version, "6.5.4");
}

#[tokio::test]
async fn an_array_speaking_only_rest_1x_is_refused_with_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/api_version"))
        .respond_with(ok("api_version_1x_only.json"))
        .mount(&server)
        .await;
    let err = client(&server).array_info().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Invalid);
    assert!(err.message.contains("1.19"), "{}", err.message);
    assert!(
        err.message.contains("protector needs one of 2.2…2.36"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn logs_in_with_the_api_token_and_sends_the_session_token_and_a_request_id() {
    let server = array(Some(1)).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .and(header("x-auth-token", SESSION))
        .and(header_exists("x-request-id"))
        .respond_with(ok("arrays.json"))
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server);
    c.array_info().await.unwrap();
    // The session is reused: still one login.
    c.array_info().await.unwrap();
}

#[tokio::test]
async fn a_rejected_api_token_is_an_auth_error_without_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/api_version"))
        .respond_with(ok("api_version.json"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/login")))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"errors": [{"message": "Invalid API token."}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).array_info().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Auth);
    assert_eq!(err.status, Some(401));
}

#[tokio::test]
async fn an_expired_session_is_renewed_by_logging_in_again_once() {
    let server = array(Some(2)).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(fixture("error_invalid_session.json")),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(ok("arrays.json"))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    let info = client(&server).array_info().await.unwrap();
    assert_eq!(info.name, "array-a");
}

#[tokio::test]
async fn a_second_401_after_logging_in_again_is_returned_not_looped() {
    let server = array(Some(2)).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(fixture("error_invalid_session.json")),
        )
        .expect(2)
        .mount(&server)
        .await;
    let err = client(&server).array_info().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Auth);
    assert!(err.message.contains("Invalid or expired session token."));
}

#[tokio::test]
async fn lists_follow_the_continuation_token_until_the_last_page() {
    let server = array(Some(1)).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volumes")))
        .and(query_param_is_missing("continuation_token"))
        .and(query_param("destroyed", "false"))
        .respond_with(ok("volumes_page1.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volumes")))
        .and(query_param("continuation_token", "Y29udGludWF0aW9uLTE="))
        .and(query_param("destroyed", "false"))
        .respond_with(ok("volumes_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    let query = VolumeQuery {
        destroyed: Some(false),
        ..VolumeQuery::default()
    };
    let vols = client(&server).list_volumes(&query).await.unwrap();
    let names: Vec<&str> = vols.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
            "volume-7f3c9a10-1111-4c2d-9e8f-000000000002-cinder",
            "cinder-pod::volume-7f3c9a10-1111-4c2d-9e8f-000000000003-cinder",
        ]
    );
    assert_eq!(vols[0].pod, None);
    assert_eq!(vols[0].connection_count, 1);
    assert_eq!(
        vols[2].pod.as_ref().map(|p| p.name.as_str()),
        Some("cinder-pod")
    );
}

#[tokio::test]
async fn a_missing_name_is_not_found_keeping_status_message_context_and_request_id() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volumes")))
        .and(query_param(
            "names",
            "volume-7f3c9a10-1111-4c2d-9e8f-000000000009-cinder",
        ))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(fixture("error_volume_does_not_exist.json"))
                .insert_header("x-request-id", "req-from-array-1"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let query = VolumeQuery {
        names: vec!["volume-7f3c9a10-1111-4c2d-9e8f-000000000009-cinder".into()],
        ..VolumeQuery::default()
    };
    let err = client(&server).list_volumes(&query).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    assert_eq!(err.status, Some(400));
    assert!(
        err.message.contains("Volume does not exist."),
        "{}",
        err.message
    );
    assert!(err
        .message
        .contains("volume-7f3c9a10-1111-4c2d-9e8f-000000000009-cinder"));
    assert_eq!(err.request_id.as_deref(), Some("req-from-array-1"));
}

#[tokio::test]
async fn copying_onto_an_existing_name_without_overwrite_is_a_conflict() {
    let server = array(None).await;
    let snap = "array-a:cinder-group.42.volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder";
    Mock::given(method("POST"))
        .and(path(format!("{V}/volumes")))
        .and(query_param(
            "names",
            "restored-volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
        ))
        .and(query_param_is_missing("overwrite"))
        .and(body_partial_json(json!({"source": {"name": snap}})))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(fixture("error_already_exists.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .copy_volume(
            "restored-volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
            snap,
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Conflict);
    assert_eq!(err.applied, Applied::No);
}

#[tokio::test]
async fn copying_a_snapshot_returns_the_new_volume_with_its_source() {
    let server = array(None).await;
    let snap = "array-a:cinder-group.42.volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder";
    Mock::given(method("POST"))
        .and(path(format!("{V}/volumes")))
        .and(query_param(
            "names",
            "restored-volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
        ))
        .and(body_partial_json(json!({"source": {"name": snap}})))
        .respond_with(ok("volume_copied.json"))
        .expect(1)
        .mount(&server)
        .await;
    let v = client(&server)
        .copy_volume(
            "restored-volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
            snap,
            false,
        )
        .await
        .unwrap();
    assert_eq!(v.source.map(|s| s.name).as_deref(), Some(snap));
    assert_eq!(v.provisioned, 10_737_418_240);
}

#[tokio::test]
async fn already_includes_on_adding_a_target_is_a_conflict() {
    let server = array(None).await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/protection-groups/targets")))
        .and(query_param("group_names", "cinder-group"))
        .and(query_param("member_names", "array-b"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(fixture("error_already_includes.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server)
        .add_protection_group_targets("cinder-group", &["array-b".into()])
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Conflict);
}

#[tokio::test]
async fn a_throttled_get_waits_as_the_rate_limit_headers_say_and_retries() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(fixture("error_gateway_rate_limit.json"))
                .insert_header("X-RateLimit-Limit-second", "10")
                .insert_header("X-RateLimit-Limit-minute", "600")
                .insert_header("X-RateLimit-Remaining-second", "0")
                .insert_header("X-RateLimit-Remaining-minute", "412"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(ok("arrays.json"))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(client(&server).array_info().await.unwrap().name, "array-a");
}

#[tokio::test]
async fn a_spent_minute_budget_asks_for_a_minute_and_keeps_the_gateway_message() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(fixture("error_gateway_rate_limit.json"))
                .insert_header("X-RateLimit-Remaining-second", "3")
                .insert_header("X-RateLimit-Remaining-minute", "0"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client_with(&server, RetryPolicy::no_retries())
        .array_info()
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Throttled);
    assert_eq!(err.retry_after, Some(Duration::from_secs(60)));
    assert!(err.message.contains("Rate limit exceeded."));
}

#[tokio::test]
async fn a_gateway_403_is_forbidden_with_its_message() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/pods")))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(fixture("error_gateway_forbidden.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).list_pods(&[]).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Forbidden);
    assert!(err.message.contains("insufficient privileges"));
}

#[tokio::test]
async fn a_get_failing_with_500_is_not_retried() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(ResponseTemplate::new(500).set_body_json(fixture("error_internal.json")))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).array_info().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert_eq!(err.status, Some(500));
}

#[tokio::test]
async fn a_get_failing_with_503_is_retried() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(ok("arrays.json"))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(client(&server).array_info().await.unwrap().name, "array-a");
}

#[tokio::test]
async fn a_post_that_may_have_been_applied_is_not_retried() {
    let server = array(None).await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/protection-group-snapshots")))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .expect(1)
        .mount(&server)
        .await;
    let opts = PgSnapshotOptions {
        replicate_now: true,
        ..PgSnapshotOptions::default()
    };
    let err = client(&server)
        .create_pg_snapshot("cinder-group", &opts)
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert_eq!(err.applied, Applied::Maybe);
}

#[tokio::test]
async fn an_unreachable_array_is_transient_and_not_applied() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = FlashArrayClient::builder(
        format!("http://127.0.0.1:{port}"),
        SecretString::from(API_TOKEN),
    )
    .retry_policy(fast_retries())
    .id_generator(Arc::new(IdGenerator::seeded(1)))
    .build()
    .unwrap();
    let err = c.array_info().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert_eq!(err.applied, Applied::No);
    assert!(
        err.message.contains("cannot connect to 127.0.0.1"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_replicate_now_snapshot_is_posted_with_its_flags_and_suffix() {
    let server = array(None).await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/protection-group-snapshots")))
        .and(query_param("source_names", "cinder-group"))
        .and(query_param("replicate_now", "true"))
        .and(query_param("apply_retention", "true"))
        .and(body_partial_json(json!({"suffix": "43"})))
        .respond_with(ok("pg_snapshot_created.json"))
        .expect(1)
        .mount(&server)
        .await;
    let opts = PgSnapshotOptions {
        suffix: Some("43".into()),
        replicate_now: true,
        apply_retention: true,
    };
    let snap = client(&server)
        .create_pg_snapshot("cinder-group", &opts)
        .await
        .unwrap();
    assert_eq!(snap.name, "cinder-group.43");
    assert_eq!(snap.source.name, "cinder-group");
    assert_eq!(snap.created, 1_742_036_400_000);
}

#[tokio::test]
async fn transfers_report_progress_and_completion() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/protection-group-snapshots/transfer")))
        .and(query_param("source_names", "array-a:cinder-group"))
        .and(query_param("destroyed", "false"))
        .respond_with(ok("pg_snapshot_transfers.json"))
        .expect(1)
        .mount(&server)
        .await;
    let q = PgSnapshotQuery {
        source_names: vec!["array-a:cinder-group".into()],
        destroyed: Some(false),
        ..PgSnapshotQuery::default()
    };
    let ts = client(&server)
        .list_pg_snapshot_transfers(&q)
        .await
        .unwrap();
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[0].progress, 1.0);
    assert_eq!(ts[0].completed, Some(1_742_032_815_000));
    assert_eq!(ts[1].completed, None);
    assert!(ts[1].progress < 1.0);
}

#[tokio::test]
async fn replicated_volume_snapshots_are_found_by_source_name() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volume-snapshots")))
        .and(query_param(
            "source_names",
            "array-a:volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
        ))
        .respond_with(ok("volume_snapshots.json"))
        .expect(1)
        .mount(&server)
        .await;
    let q = VolumeSnapshotQuery {
        source_names: vec!["array-a:volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder".into()],
        ..VolumeSnapshotQuery::default()
    };
    let snaps = client(&server).list_volume_snapshots(&q).await.unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1].suffix, "42");
    assert_eq!(
        snaps[1].source.name,
        "array-a:volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder"
    );
}

#[tokio::test]
async fn the_newest_snapshots_are_asked_for_sorted_and_limited_and_read_from_one_page() {
    let server = array(None).await;
    let mut body = fixture("volume_snapshots.json");
    // The newest only, and a token for more that a limited listing does not follow.
    if let Some(items) = body["items"].as_array_mut() {
        items.remove(0);
    }
    body["continuation_token"] = json!("bW9yZQ==");
    body["more_items_remaining"] = json!(true);
    Mock::given(method("GET"))
        .and(path(format!("{V}/volume-snapshots")))
        .and(query_param(
            "source_names",
            "array-a:volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
        ))
        .and(query_param("destroyed", "false"))
        .and(query_param("sort", "created-,name-"))
        .and(query_param("limit", "1"))
        .and(query_param_is_missing("continuation_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volume-snapshots")))
        .and(query_param("continuation_token", "bW9yZQ=="))
        .respond_with(ok("volume_snapshots.json"))
        .expect(0)
        .mount(&server)
        .await;
    let q = VolumeSnapshotQuery {
        source_names: vec!["array-a:volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder".into()],
        destroyed: Some(false),
        order: SnapshotOrder::NewestFirst,
        limit: Some(1),
        ..VolumeSnapshotQuery::default()
    };
    let snaps = client(&server).list_volume_snapshots(&q).await.unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].suffix, "42");
}

#[tokio::test]
async fn a_listing_in_the_arrays_order_sends_no_sort_or_limit() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volume-snapshots")))
        .and(query_param_is_missing("sort"))
        .and(query_param_is_missing("limit"))
        .respond_with(ok("volume_snapshots.json"))
        .expect(1)
        .mount(&server)
        .await;
    let q = VolumeSnapshotQuery {
        source_names: vec!["array-a:volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder".into()],
        ..VolumeSnapshotQuery::default()
    };
    assert_eq!(
        client(&server)
            .list_volume_snapshots(&q)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn snapshots_by_prefix_and_pod_volumes_use_filter_expressions() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volume-snapshots")))
        .and(query_param("filter", "name='array-a:cinder-group.42.*'"))
        .respond_with(ok("volume_snapshots.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volumes")))
        .and(query_param("filter", "pod.name='cinder-pod'"))
        .respond_with(ok("volumes_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let q = VolumeSnapshotQuery {
        name_prefix: Some("array-a:cinder-group.42.".into()),
        ..VolumeSnapshotQuery::default()
    };
    assert_eq!(c.list_volume_snapshots(&q).await.unwrap().len(), 2);
    let vq = VolumeQuery {
        pod: Some("cinder-pod".into()),
        ..VolumeQuery::default()
    };
    assert_eq!(c.list_volumes(&vq).await.unwrap().len(), 1);
}

#[tokio::test]
async fn protection_groups_targets_and_members_parse() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/protection-groups")))
        .and(query_param("names", "cinder-group"))
        .respond_with(ok("protection_groups.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/protection-groups/targets")))
        .and(query_param("group_names", "cinder-group"))
        .respond_with(ok("protection_group_targets.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/protection-groups/volumes")))
        .and(query_param("group_names", "cinder-group"))
        .respond_with(ok("protection_group_volumes.json"))
        .mount(&server)
        .await;
    let c = client(&server);
    let pg = &c
        .list_protection_groups(&["cinder-group".into()])
        .await
        .unwrap()[0];
    assert!(pg.is_local);
    assert_eq!(
        pg.replication_schedule,
        ReplicationSchedule {
            enabled: true,
            frequency_ms: 3_600_000
        }
    );
    assert_eq!(pg.target_retention.all_for_sec, 14_400);
    let t = &c
        .list_protection_group_targets("cinder-group")
        .await
        .unwrap()[0];
    assert_eq!(
        (t.member.name.as_str(), t.allowed, t.status.as_str()),
        ("array-b", true, "replicating")
    );
    let members = c
        .list_protection_group_volumes("cinder-group")
        .await
        .unwrap();
    assert_eq!(members.len(), 2);
}

#[tokio::test]
async fn set_up_calls_use_group_and_member_names_and_state_bodies() {
    let server = array(None).await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/protection-groups/volumes")))
        .and(query_param("group_names", "cinder-group"))
        .and(query_param("member_names", "v1,v2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{V}/protection-groups/targets")))
        .and(query_param("group_names", "array-a:cinder-group"))
        .and(body_partial_json(json!({"allowed": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{V}/protection-groups")))
        .and(query_param("names", "cinder-group"))
        .and(body_partial_json(
            json!({"replication_schedule": {"enabled": true, "frequency": 900000}}),
        ))
        .respond_with(ok("protection_groups.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{V}/volumes")))
        .and(query_param("names", "v1"))
        .and(body_partial_json(json!({"pod": {"name": "cinder-pod"}})))
        .respond_with(ok("volumes_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/pods/arrays")))
        .and(query_param("group_names", "cinder-pod"))
        .and(query_param("member_names", "array-b"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    c.add_protection_group_volumes("cinder-group", &["v1".into(), "v2".into()])
        .await
        .unwrap();
    c.allow_protection_group("array-a:cinder-group")
        .await
        .unwrap();
    c.set_replication_schedule(
        "cinder-group",
        &ReplicationSchedule {
            enabled: true,
            frequency_ms: 900_000,
        },
    )
    .await
    .unwrap();
    let moved = c.move_volume("v1", Some("cinder-pod")).await.unwrap();
    assert!(moved.name.starts_with("cinder-pod::"));
    c.stretch_pod("cinder-pod", "array-b").await.unwrap();
}

#[tokio::test]
async fn destroy_patches_and_eradicate_deletes() {
    let server = array(None).await;
    Mock::given(method("PATCH"))
        .and(path(format!("{V}/volumes")))
        .and(query_param("names", "v1"))
        .and(body_partial_json(json!({"destroyed": true})))
        .respond_with(ok("volumes_page2.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{V}/volumes")))
        .and(query_param("names", "v1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    c.destroy_volume("v1").await.unwrap();
    c.eradicate_volume("v1").await.unwrap();
}

#[tokio::test]
async fn pods_and_array_connections_report_their_status() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/pods")))
        .and(query_param("names", "cinder-pod"))
        .respond_with(ok("pods.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/array-connections")))
        .respond_with(ok("array_connections.json"))
        .mount(&server)
        .await;
    let c = client(&server);
    let pod = &c.list_pods(&["cinder-pod".into()]).await.unwrap()[0];
    assert_eq!(pod.arrays.len(), 2);
    assert_eq!(pod.arrays[1].status, "resyncing");
    assert_eq!(pod.arrays[1].frozen_at, Some(1_742_029_200_000));
    let conn = &c.list_array_connections().await.unwrap()[0];
    assert_eq!(
        (
            conn.name.as_str(),
            conn.status.as_str(),
            conn.connection_type.as_str()
        ),
        ("array-b", "connected", "async-replication")
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_the_next_call_logs_in_again() {
    let server = array(Some(2)).await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/logout")))
        .and(header("x-auth-token", SESSION))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(ok("arrays.json"))
        .mount(&server)
        .await;
    let c = client(&server);
    c.array_info().await.unwrap();
    c.logout().await.unwrap();
    c.array_info().await.unwrap();
}

#[tokio::test]
async fn tokens_never_appear_in_debug_display_or_serialised_errors() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(fixture("error_invalid_session.json")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volumes")))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(fixture("error_volume_does_not_exist.json")),
        )
        .mount(&server)
        .await;
    let builder = FlashArrayClient::builder(server.uri(), SecretString::from(API_TOKEN));
    let mut printed = vec![format!("{builder:?}")];
    let c = builder.retry_policy(fast_retries()).build().unwrap();
    printed.push(format!("{c:?}"));
    let errors = [
        c.array_info().await.unwrap_err(),
        c.list_volumes(&VolumeQuery::default()).await.unwrap_err(),
    ];
    printed.push(format!("{c:?}"));
    for e in &errors {
        printed.push(format!("{e:?}"));
        printed.push(format!("{e}"));
        printed.push(serde_json::to_string(e).unwrap());
    }
    // The errors are real, and carry what the array said.
    assert_eq!(errors[0].kind, BackendErrorKind::Auth);
    assert_eq!(errors[1].kind, BackendErrorKind::NotFound);
    for text in &printed {
        assert!(!text.contains(API_TOKEN), "API token leaked: {text}");
        assert!(!text.contains(SESSION), "session token leaked: {text}");
        assert!(!text.contains("SECRET"), "secret leaked: {text}");
    }
}

#[tokio::test]
async fn a_throttled_post_is_retried_because_it_never_reached_the_array() {
    let server = array(None).await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/volumes")))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(fixture("error_gateway_rate_limit.json"))
                .insert_header("X-RateLimit-Remaining-second", "0")
                .insert_header("X-RateLimit-Remaining-minute", "37"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/volumes")))
        .respond_with(ok("volume_copied.json"))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    let v = client(&server)
        .copy_volume(
            "restored-volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
            "array-a:cinder-group.42.volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder",
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        v.name,
        "restored-volume-7f3c9a10-1111-4c2d-9e8f-000000000001-cinder"
    );
}

#[test]
fn the_builder_rejects_urls_that_are_not_http_and_certificates_that_are_not_pem() {
    let token = || SecretString::from(API_TOKEN);
    let err = FlashArrayClient::builder("ftp://array-a.example.com", token())
        .build()
        .unwrap_err();
    assert!(
        matches!(err, protector_purestorage::ConfigError::InvalidUrl { .. }),
        "{err}"
    );
    assert!(FlashArrayClient::builder("not a url", token())
        .build()
        .is_err());
    let bad_ca = FlashArrayClient::builder("https://array-a.example.com", token())
        .add_root_certificate_pem(
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec(),
        )
        .build();
    assert!(bad_ca.is_err());
    let insecure = FlashArrayClient::builder("https://array-a.example.com", token())
        .accept_invalid_certs(true)
        .build()
        .unwrap();
    assert!(!format!("{insecure:?}").contains(API_TOKEN));
}

mod factory {
    use super::*;
    use protector_core::ports::{ArraySide, StorageDriverFactory};
    use protector_core::{model::ReplicationPolicy, SystemClock};
    use protector_purestorage::{FactoryOptions, PureDriverFactory};

    fn policy(primary: &str, secondary: &str, token_a: &str) -> ReplicationPolicy {
        let epoch = chrono::DateTime::from_timestamp(1_742_029_200, 0).unwrap();
        ReplicationPolicy {
            protection_group_id: "pg-1".into(),
            primary_fa_url: primary.into(),
            primary_fa_api_token: SecretString::from(token_a),
            secondary_fa_url: secondary.into(),
            secondary_fa_api_token: SecretString::from("token-b-SECRET"),
            pure_pg_name: "cinder-group".into(),
            rpo_minutes: 15,
            replication_interval_seconds: 900,
            created_at: epoch,
            updated_at: epoch,
        }
    }

    fn factory() -> PureDriverFactory {
        PureDriverFactory::new(
            Arc::new(SystemClock),
            Arc::new(IdGenerator::seeded(3)),
            FactoryOptions {
                retry: fast_retries(),
                ..FactoryOptions::default()
            },
        )
    }

    #[tokio::test]
    async fn the_factory_builds_drivers_that_speak_to_the_policys_arrays() {
        let server = array(None).await;
        Mock::given(method("GET"))
            .and(path(format!("{V}/arrays")))
            .respond_with(ok("arrays.json"))
            .mount(&server)
            .await;
        let f = factory();
        let driver = f
            .driver(&policy(
                &server.uri(),
                "https://array-b.example.com",
                API_TOKEN,
            ))
            .unwrap();
        assert_eq!(
            driver.array_name(ArraySide::Primary).await.unwrap(),
            "array-a"
        );
    }

    #[test]
    fn the_factory_shares_one_client_per_url_until_its_token_changes() {
        let f = factory();
        let t1 = SecretString::from("token-a-SECRET-1");
        let t2 = SecretString::from("token-a-SECRET-2");
        let a = f.client("https://array-a.example.com", &t1).unwrap();
        let again = f.client("https://array-a.example.com/", &t1).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        let rotated = f.client("https://array-a.example.com", &t2).unwrap();
        assert!(!Arc::ptr_eq(&a, &rotated));
        let Err(err) = f.driver(&policy(
            "array-a.example.com",
            "https://array-b.example.com",
            "token-a-SECRET-1",
        )) else {
            panic!("a URL without a scheme was accepted");
        };
        assert_eq!(err.kind, BackendErrorKind::Invalid);
        for text in [format!("{f:?}"), format!("{err:?}"), err.to_string()] {
            assert!(!text.contains("SECRET"), "token leaked: {text}");
        }
    }
}

#[tokio::test]
async fn an_exhausted_retry_budget_stops_retrying() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/arrays")))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .expect(2)
        .mount(&server)
        .await;
    let retry = RetryPolicy {
        budget_capacity: 5,
        retry_cost: 5,
        success_refund: 0,
        ..fast_retries()
    };
    let err = client_with(&server, retry).array_info().await.unwrap_err();
    assert_eq!(err.status, Some(503));
}

/// Mounts a mock answering `body` to exactly one matching call.
async fn once(server: &MockServer, mock: wiremock::MockBuilder, body: serde_json::Value) {
    mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn lifecycle_calls_use_the_documented_parameters_and_bodies() {
    use protector_purestorage::{PromotionState, TargetRetention};
    let server = array(None).await;
    let empty = json!({"items": []});
    let vol = |name: &str| json!({"items": [{"id": "1", "name": name, "provisioned": 1073741824}]});
    let pg = fixture("protection_groups.json");
    let pods = fixture("pods.json");
    let m = |verb: &str, p: &str| Mock::given(method(verb)).and(path(format!("{V}/{p}")));

    once(
        &server,
        m("POST", "volumes")
            .and(query_param("names", "v1"))
            .and(body_partial_json(json!({"provisioned": 1073741824u64}))),
        vol("v1"),
    )
    .await;
    once(
        &server,
        m("PATCH", "volumes")
            .and(query_param("names", "v1"))
            .and(body_partial_json(json!({"name": "v2"}))),
        vol("v2"),
    )
    .await;
    once(
        &server,
        m("POST", "protection-groups").and(query_param("names", "cinder-group")),
        pg.clone(),
    )
    .await;
    once(
        &server,
        m("PATCH", "protection-groups")
            .and(query_param("names", "cinder-group"))
            .and(body_partial_json(
                json!({"target_retention": {"all_for_sec": 14400, "per_day": 3, "days": 7}}),
            )),
        pg.clone(),
    )
    .await;
    once(
        &server,
        m("PATCH", "protection-groups")
            .and(query_param("names", "cinder-group"))
            .and(body_partial_json(json!({"destroyed": true}))),
        pg.clone(),
    )
    .await;
    once(
        &server,
        m("DELETE", "protection-groups").and(query_param("names", "cinder-group")),
        empty.clone(),
    )
    .await;
    once(
        &server,
        m("DELETE", "protection-groups/volumes")
            .and(query_param("group_names", "cinder-group"))
            .and(query_param("member_names", "v2")),
        empty.clone(),
    )
    .await;
    once(
        &server,
        m("DELETE", "protection-groups/targets")
            .and(query_param("group_names", "cinder-group"))
            .and(query_param("member_names", "array-b")),
        empty.clone(),
    )
    .await;
    once(
        &server,
        m("GET", "protection-group-snapshots")
            .and(query_param("source_names", "cinder-group"))
            .and(query_param("destroyed", "false")),
        fixture("pg_snapshot_created.json"),
    )
    .await;
    once(
        &server,
        m("PATCH", "protection-group-snapshots")
            .and(query_param("names", "cinder-group.43"))
            .and(body_partial_json(json!({"destroyed": true}))),
        empty.clone(),
    )
    .await;
    once(
        &server,
        m("DELETE", "protection-group-snapshots").and(query_param("names", "cinder-group.43")),
        empty.clone(),
    )
    .await;
    once(
        &server,
        m("POST", "pods").and(query_param("names", "cinder-pod")),
        pods.clone(),
    )
    .await;
    once(
        &server,
        m("PATCH", "pods")
            .and(query_param("names", "cinder-pod"))
            .and(body_partial_json(
                json!({"requested_promotion_state": "demoted"}),
            )),
        pods.clone(),
    )
    .await;
    once(
        &server,
        m("DELETE", "pods/arrays")
            .and(query_param("group_names", "cinder-pod"))
            .and(query_param("member_names", "array-b"))
            .and(query_param("with_unknown", "true")),
        empty.clone(),
    )
    .await;
    once(
        &server,
        m("PATCH", "pods")
            .and(query_param("names", "cinder-pod"))
            .and(body_partial_json(json!({"destroyed": true}))),
        pods.clone(),
    )
    .await;
    once(
        &server,
        m("DELETE", "pods").and(query_param("names", "cinder-pod")),
        empty.clone(),
    )
    .await;
    once(
        &server,
        m("PATCH", "volumes")
            .and(query_param("names", "cinder-pod::v2"))
            .and(body_partial_json(json!({"pod": {"name": ""}}))),
        vol("v2"),
    )
    .await;

    let c = client(&server);
    assert_eq!(
        c.create_volume("v1", 1 << 30).await.unwrap().provisioned,
        1 << 30
    );
    assert_eq!(c.rename_volume("v1", "v2").await.unwrap().name, "v2");
    assert_eq!(
        c.create_protection_group("cinder-group")
            .await
            .unwrap()
            .name,
        "cinder-group"
    );
    c.set_target_retention("cinder-group", &TargetRetention::default())
        .await
        .unwrap();
    c.destroy_protection_group("cinder-group").await.unwrap();
    c.eradicate_protection_group("cinder-group").await.unwrap();
    c.remove_protection_group_volumes("cinder-group", &["v2".into()])
        .await
        .unwrap();
    c.remove_protection_group_targets("cinder-group", &["array-b".into()])
        .await
        .unwrap();
    let q = PgSnapshotQuery {
        source_names: vec!["cinder-group".into()],
        destroyed: Some(false),
        ..PgSnapshotQuery::default()
    };
    assert_eq!(c.list_pg_snapshots(&q).await.unwrap()[0].suffix, "43");
    c.destroy_pg_snapshot("cinder-group.43").await.unwrap();
    c.eradicate_pg_snapshot("cinder-group.43").await.unwrap();
    assert_eq!(c.create_pod("cinder-pod").await.unwrap().name, "cinder-pod");
    c.set_pod_promotion("cinder-pod", PromotionState::Demoted)
        .await
        .unwrap();
    c.unstretch_pod("cinder-pod", "array-b", true)
        .await
        .unwrap();
    c.destroy_pod("cinder-pod").await.unwrap();
    c.eradicate_pod("cinder-pod").await.unwrap();
    assert_eq!(
        c.move_volume("cinder-pod::v2", None).await.unwrap().name,
        "v2"
    );
}

#[tokio::test]
async fn a_login_without_a_session_token_is_an_auth_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/api_version"))
        .respond_with(ok("api_version.json"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/login")))
        .respond_with(ok("login.json"))
        .mount(&server)
        .await;
    let err = client(&server).array_info().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Auth);
    assert!(err.message.contains("x-auth-token"), "{}", err.message);
}

#[tokio::test]
async fn a_garbled_response_is_a_transient_error() {
    let server = array(None).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/volumes")))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"))
        .mount(&server)
        .await;
    let err = client(&server)
        .list_volumes(&VolumeQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient);
    assert!(
        err.message.contains("malformed volumes response"),
        "{}",
        err.message
    );
}
