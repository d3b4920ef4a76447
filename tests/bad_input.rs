//! The bad-input matrix through the public API: every malformed or unknown input gets a
//! clear, specific error — never a panic, never a half-written record.

#[allow(dead_code)]
#[path = "engine/fixture.rs"]
mod fixture;

use fixture::{seed, Fx, Setup, PG};
use protector::core::engine::{CreateProtectionGroup, TestFailoverRequest};
use protector::core::ids::OperationId;
use protector::core::model::{parse_mapping, parse_mappings, OperationFilter, ReplicationType};
use protector::core::policy::PolicyEngine;
use protector::openstack::ConfigLoader;
use protector::sim::{DrStores, SimSite};

async fn records(fx: &Fx) -> usize {
    let mut n = 0;
    for site in SimSite::BOTH {
        n += fx
            .stores
            .operations(site)
            .list_operations(&OperationFilter::default())
            .await
            .expect("ops")
            .len();
    }
    n
}

async fn versions(fx: &Fx) -> (u64, u64) {
    (
        fx.pg(SimSite::A).await.version,
        fx.pg(SimSite::B).await.version,
    )
}

fn loader_over(dir: &std::path::Path) -> ConfigLoader {
    ConfigLoader::new([("HOME", "/nonexistent")]).with_search_dirs([dir.to_path_buf()])
}

#[test]
fn malformed_clouds_yaml_names_the_file_and_the_position() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("clouds.yaml"),
        "clouds:\n  site-a:\n    auth: [unclosed\n",
    )
    .expect("write");
    let err = loader_over(dir.path())
        .load(Some("site-a"))
        .expect_err("malformed");
    let text = err.to_string();
    assert!(text.contains("clouds.yaml"), "{text}");
    assert!(text.contains("invalid YAML at line"), "{text}");
}

#[test]
fn clouds_yaml_whose_top_level_is_not_a_mapping_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("clouds.yaml"), "- just\n- a list\n").expect("write");
    let err = loader_over(dir.path())
        .load(Some("site-a"))
        .expect_err("malformed");
    assert!(err.to_string().contains("'clouds'"), "{err}");
}

#[test]
fn an_unknown_cloud_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(
        dir.path().join("clouds.yaml"),
        "clouds:\n  site-a:\n    auth:\n      auth_url: https://keystone.a:5000/v3\n      username: admin\n      password: pw\n",
    )
    .expect("write");
    let err = loader_over(dir.path())
        .load(Some("site-z"))
        .expect_err("unknown cloud");
    let text = err.to_string();
    assert!(text.contains("site-z"), "{text}");
    assert!(text.contains("clouds.yaml"), "{text}");
}

#[test]
fn malformed_policy_yaml_is_refused_with_its_source_name() {
    for bad in [
        "protector:operations:index: [unclosed\n",
        "- a\n- list\n",
        "protector:operations:index: \"rule:\"\n",
        "protector:operations:index: \"role:admin and (\"\n",
    ] {
        let err = PolicyEngine::from_yaml_str(bad, "policy.yaml").expect_err(bad);
        let text = err.to_string();
        assert!(!text.is_empty(), "{bad:?}");
        assert!(text.contains("policy.yaml"), "{bad:?}: {text}");
    }
}

#[test]
fn malformed_mappings_get_errors_that_quote_the_argument() {
    for bad in ["net-a", "net-a=", "=net-b", "a=b=c", " = "] {
        let err = parse_mapping(bad).expect_err(bad);
        assert!(
            err.to_string().contains(bad.trim()),
            "{bad:?}: {err} does not quote the argument"
        );
    }
    let err = parse_mappings(&["a=b", "a=c"]).expect_err("conflict");
    let text = err.to_string();
    assert!(
        text.contains('a') && text.contains('b') && text.contains('c'),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn operations_on_an_unknown_group_are_refused_before_any_record() {
    let fx = Setup::new(seed(1201)).build().await;
    let err =
        fx.a.failover(&fx.ctx, "no-such-group", fx.planned())
            .await
            .expect_err("unknown group");
    assert_eq!(
        err.to_string(),
        "protection group no-such-group could not be found"
    );
    let err =
        fx.a.sync_volumes(&fx.ctx, "no-such-group")
            .await
            .expect_err("unknown group");
    assert!(err.to_string().contains("no-such-group"), "{err}");
    let err =
        fx.a.remove_member(&fx.ctx, PG, "no-such-server")
            .await
            .expect_err("unknown member");
    assert!(err.to_string().contains("no-such-server"), "{err}");
    assert_eq!(records(&fx).await, 0);
    assert_eq!(versions(&fx).await, (fx.pg.version, fx.pg.version));
}

#[tokio::test(start_paused = true)]
async fn an_unknown_operation_id_is_not_found() {
    let fx = Setup::new(seed(1202)).build().await;
    let id = OperationId::new("00000000-0000-0000-0000-000000000000");
    let err =
        fx.a.get_operation(&fx.ctx, &id)
            .await
            .expect_err("unknown operation");
    let text = err.to_string();
    assert!(text.contains("could not be found"), "{text}");
    assert!(text.contains(id.as_str()), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_group_naming_an_unknown_site_is_refused_and_not_stored() {
    let fx = Setup::new(seed(1203)).build().await;
    let err =
        fx.a.create_protection_group(
            &fx.ctx,
            &CreateProtectionGroup {
                name: "elsewhere".into(),
                description: String::new(),
                replication_type: ReplicationType::Async,
                primary_site: None,
                secondary_site: Some("site-z".into()),
                volume_type: None,
                secondary_volume_type: None,
            },
        )
        .await
        .expect_err("unknown site");
    assert!(err.to_string().contains("site-z"), "{err}");
    for site in SimSite::BOTH {
        let pgs = fx
            .stores
            .metadata(site)
            .list_protection_groups(None)
            .await
            .expect("pgs");
        assert!(pgs.iter().all(|p| p.name != "elsewhere"), "{site:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_group_name_is_refused_and_the_original_is_untouched() {
    let fx = Setup::new(seed(1204)).build().await;
    let err =
        fx.a.create_protection_group(
            &fx.ctx,
            &CreateProtectionGroup {
                name: PG.into(),
                description: "again".into(),
                replication_type: ReplicationType::Async,
                primary_site: None,
                secondary_site: None,
                volume_type: None,
                secondary_volume_type: None,
            },
        )
        .await
        .expect_err("duplicate");
    assert!(err.to_string().contains(PG), "{err}");
    let pgs = fx
        .stores
        .metadata(SimSite::A)
        .list_protection_groups(None)
        .await
        .expect("pgs");
    assert_eq!(pgs.iter().filter(|p| p.name == PG).count(), 1);
    assert_eq!(fx.pg(SimSite::A).await, fx.pg);
}

#[tokio::test(start_paused = true)]
async fn a_member_added_twice_is_refused_and_counted_once() {
    let fx = Setup::new(seed(1205)).build().await;
    let server = fx.workload.servers[0].id.to_string();
    let err =
        fx.a.add_member(&fx.ctx, PG, &server)
            .await
            .expect_err("duplicate member");
    assert!(!err.to_string().is_empty());
    assert_eq!(fx.pg(SimSite::A).await.members.len(), fx.pg.members.len());
    assert_eq!(versions(&fx).await, (fx.pg.version, fx.pg.version));
}

#[tokio::test(start_paused = true)]
async fn operations_in_the_wrong_status_are_refused_before_any_record() {
    let fx = Setup::new(seed(1206)).build().await;
    // An unplanned failover must be started from the target site.
    let err =
        fx.a.failover(&fx.ctx, PG, fx.unplanned())
            .await
            .expect_err("unplanned from source");
    assert!(!err.to_string().is_empty());
    assert_eq!(records(&fx).await, 0);
    // A second drill while the first one's resources exist.
    fx.let_time_pass(std::time::Duration::from_secs(400)).await;
    let op =
        fx.a.test_failover(
            &fx.ctx,
            PG,
            TestFailoverRequest {
                mappings: fx.mappings_a_to_b(),
            },
        )
        .await
        .expect("drill");
    fixture::assert_completed(&fx.finish(&fx.a, op).await);
    let err =
        fx.a.test_failover(
            &fx.ctx,
            PG,
            TestFailoverRequest {
                mappings: fx.mappings_a_to_b(),
            },
        )
        .await
        .expect_err("second drill");
    assert!(!err.to_string().is_empty());
    assert_eq!(records(&fx).await, 1);
    fx.check().await;
}

/// A store file written by a protector with a newer schema (SQLite keeps
/// `PRAGMA user_version` at offset 60 of the header, big-endian).
#[tokio::test(start_paused = true)]
async fn a_store_from_a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("dir");
    drop(DrStores::sqlite(dir.path()).expect("create"));
    let path = dir.path().join("site-a.db");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[60..64].copy_from_slice(&9999u32.to_be_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let err = DrStores::sqlite(dir.path()).expect_err("newer schema");
    let text = err.to_string();
    assert!(text.contains("site-a.db"), "{text}");
    assert!(text.contains("9999") || text.contains("newer"), "{text}");
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "file modified");
}

#[tokio::test(start_paused = true)]
async fn a_truncated_store_file_is_reported_and_not_repaired() {
    let dir = tempfile::tempdir().expect("dir");
    let stores = DrStores::sqlite(dir.path()).expect("create");
    let fx = Setup::new(seed(1207)).stores(stores).build().await;
    drop(fx);
    let path = dir.path().join("site-a.db");
    let bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 4096, "store too small: {}", bytes.len());
    let cut = &bytes[..bytes.len() / 2 + 100];
    std::fs::write(&path, cut).expect("truncate");
    let text = match DrStores::sqlite(dir.path()) {
        Err(e) => e.to_string(),
        Ok(stores) => stores
            .metadata(SimSite::A)
            .list_protection_groups(None)
            .await
            .expect_err("a truncated store must not read as valid")
            .to_string(),
    };
    assert!(!text.is_empty());
    assert_eq!(std::fs::read(&path).expect("read"), cut, "file modified");
}
