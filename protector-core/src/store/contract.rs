//! The contract every store implementation passes.
//!
//! Each case is an async function over any `S: OperationStore + MetadataStore`;
//! [`contract_tests!`] turns every case into one `#[tokio::test]` per implementation
//! ([`MemoryStore`] and a file-backed [`SqliteStore`]), so the two cannot drift apart.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use secrecy::{ExposeSecret, SecretString};

use super::{MemoryStore, MetadataStore, OperationStore, SqliteStore};
use crate::context::RequestContext;
use crate::error::StoreError;
use crate::ids::{OperationId, ProjectId, ProtectionGroupId, ServerId, SiteId, UserId};
use crate::model::{
    FailoverType, JournalEvent, Operation, OperationFilter, OperationParameters, OperationStatus,
    OperationType, PgRef, PgStatus, ProtectionGroup, ReplicationPolicy, ResourceMappings,
    ResourceRef, Site, SiteCredentials, SiteStatus, SyncState, SyncStatusValue,
};
use crate::progress::{Phase, StepId};

// ---------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 15, 9, 0, 0).single().unwrap() + Duration::minutes(minutes)
}

fn op(id: &str, project: &str, pg: &str, created_minute: i64) -> Operation {
    Operation::new(
        OperationId::new(id),
        ProtectionGroupId::new(pg),
        ProjectId::new(project),
        OperationType::Failover,
        Some(FailoverType::Planned),
        SiteId::new("site-a"),
        SiteId::new("site-b"),
        OperationParameters::default(),
        t(created_minute),
    )
}

// Fixtures are built from JSON so that fields added to the model later (all carry
// serde defaults) do not break the suite; the round trips still compare whole records.

pub(super) fn site(id: &str, name: &str, password: &str) -> Site {
    let mut site: Site = serde_json::from_value(serde_json::json!({
        "id": id,
        "name": name,
        "description": format!("{name} cloud"),
        "auth_url": format!("https://keystone.{name}.example:5000/v3"),
        "region_name": "RegionOne",
        "interface": "public",
        "cloud": name,
        "status": "active",
        "created_at": t(0),
        "last_validated_at": t(5),
    }))
    .unwrap();
    site.credentials = SiteCredentials {
        username: Some("dr-admin".to_owned()),
        password: Some(SecretString::from(password.to_owned())),
        project_name: Some("admin".to_owned()),
        project_id: None,
        user_domain_name: Some("Default".to_owned()),
        project_domain_name: Some("Default".to_owned()),
        application_credential_id: Some("app-cred-1".to_owned()),
        application_credential_secret: Some(SecretString::from(format!("{password}-app"))),
    };
    site
}

pub(super) fn group(id: &str, project: &str, name: &str) -> ProtectionGroup {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "name": name,
        "description": "production web tier",
        "project_id": project,
        "status": "active",
        "replication_type": "async",
        "primary_site_id": "site-a",
        "secondary_site_id": "site-b",
        "current_primary_site_id": "site-a",
        "replication_source_site_id": "site-a",
        "failover_count": 2,
        "last_failover_at": t(30),
        "last_replication_at": t(31),
        "version": 7,
        "sites": {
            "site-a": {
                "volume_type_id": "vt-a",
                "volume_type_name": "pure-replicated",
                "consistency_group_id": "grp-a",
            },
        },
        "members": [{
            "id": "m-1",
            "instance_id": "srv-1",
            "instance_name": "web-1",
            "status": "protected",
            "boot_order": 1,
            "flavor_id": "m1.large",
            "flavor_name": "m1.large",
            "image_id": null,
            "networks": [{
                "network_id": "net-primary-web",
                "network_name": "web",
                "fixed_ip": "10.0.0.5",
            }],
            "security_groups": ["default"],
            "key_name": "ops",
            "metadata": {"tier": "web"},
            "availability_zone": "nova",
            "volumes": [{
                "volume_id": "vol-1",
                "name": "web-1-boot",
                "size_gb": 40,
                "bootable": true,
                "boot_index": 0,
                "device": "/dev/vda",
                "volume_type": "pure-replicated",
                "array_volume_name": "volume-vol-1-cinder",
            }],
            "created_at": t(1),
        }],
        "mappings": [{
            "source_site_id": "site-a",
            "target_site_id": "site-b",
            "mappings": {
                "networks": {"net-primary-web": "net-secondary-web"},
                "flavors": {"m1.large": "m1.large.dr"},
            },
        }],
        "stale": {"site-b": {"servers": ["srv-old"], "volumes": ["vol-old"]}},
        "test_resources": {
            "operation_id": "op-test",
            "site_id": "site-b",
            "servers": ["srv-test"],
            "array_volumes": ["test-copy-1"],
        },
        "created_at": t(0),
        "updated_at": t(2),
    }))
    .unwrap()
}

pub(super) fn policy(pg: &str, primary: &str, secondary: &str) -> ReplicationPolicy {
    let mut policy: ReplicationPolicy = serde_json::from_value(serde_json::json!({
        "protection_group_id": pg,
        "primary_fa_url": "https://fa-a.example",
        "secondary_fa_url": "https://fa-b.example",
        "pure_pg_name": "pg-web",
        "rpo_minutes": 15,
        "replication_interval_seconds": 900,
        "created_at": t(0),
        "updated_at": t(3),
    }))
    .unwrap();
    policy.primary_fa_api_token = SecretString::from(primary.to_owned());
    policy.secondary_fa_api_token = SecretString::from(secondary.to_owned());
    policy
}

fn sync_state(pg: &str, status: SyncStatusValue) -> SyncState {
    SyncState {
        protection_group_id: ProtectionGroupId::new(pg),
        remote_version: Some(7),
        status,
        last_sync_at: Some(t(4)),
        last_sync_error: None,
    }
}

/// Everything about a site, secrets exposed, for comparisons (`Site` has no `Eq`).
pub(super) fn site_fingerprint(s: &Site) -> (serde_json::Value, Vec<Option<String>>) {
    let c = &s.credentials;
    (
        serde_json::to_value(s).unwrap(),
        vec![
            c.username.clone(),
            c.password.as_ref().map(|p| p.expose_secret().to_owned()),
            c.project_name.clone(),
            c.project_id.clone(),
            c.user_domain_name.clone(),
            c.project_domain_name.clone(),
            c.application_credential_id.clone(),
            c.application_credential_secret
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
        ],
    )
}

/// Everything about a policy, tokens exposed.
pub(super) fn policy_fingerprint(p: &ReplicationPolicy) -> (serde_json::Value, String, String) {
    (
        serde_json::to_value(p).unwrap(),
        p.primary_fa_api_token.expose_secret().to_owned(),
        p.secondary_fa_api_token.expose_secret().to_owned(),
    )
}

fn ids(ops: &[Operation]) -> Vec<&str> {
    ops.iter().map(|o| o.id.as_str()).collect()
}

// ---------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------

async fn an_inserted_operation_reads_back_unchanged<S: OperationStore + MetadataStore>(s: &S) {
    let mut o = op("op-1", "p1", "pg-1", 0);
    o.result_data = serde_json::json!({"instances_created": [{"name": "web-1", "id": "srv-9"}]});
    o.steps_completed = vec![StepId::Prepare, StepId::ValidateTarget];
    s.insert_operation(&o).await.unwrap();
    assert_eq!(s.get_operation(&o.id).await.unwrap(), Some(o));
}

async fn a_missing_operation_reads_as_none<S: OperationStore + MetadataStore>(s: &S) {
    assert_eq!(
        s.get_operation(&OperationId::new("nope")).await.unwrap(),
        None
    );
}

async fn inserting_an_operation_twice_is_already_exists<S: OperationStore + MetadataStore>(s: &S) {
    let o = op("op-1", "p1", "pg-1", 0);
    s.insert_operation(&o).await.unwrap();
    let mut again = o.clone();
    again.progress = 50;
    let err = s.insert_operation(&again).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(s.get_operation(&o.id).await.unwrap(), Some(o));
}

async fn updating_an_operation_replaces_every_field<S: OperationStore + MetadataStore>(s: &S) {
    let o = op("op-1", "p1", "pg-1", 0);
    s.insert_operation(&o).await.unwrap();
    let mut done = o.clone();
    done.status = OperationStatus::Failed;
    done.progress = 45;
    done.phase = Some(Phase::StorageFailover);
    done.current_step = Some(StepId::PromoteVolumes);
    done.started_at = Some(t(1));
    done.completed_at = Some(t(9));
    done.updated_at = Some(t(9));
    done.error_message = Some("flasharray conflict: volume exists".to_owned());
    done.steps_completed = vec![StepId::Prepare, StepId::ValidateTarget, StepId::GetSnapshot];
    done.steps_failed = vec![StepId::PromoteVolumes];
    done.result_data = serde_json::json!({"rolled_back": 3});
    done.parameters.force = true;
    s.update_operation(&done).await.unwrap();
    assert_eq!(s.get_operation(&o.id).await.unwrap(), Some(done));
}

async fn updating_a_missing_operation_is_not_found<S: OperationStore + MetadataStore>(s: &S) {
    let err = s
        .update_operation(&op("ghost", "p1", "pg-1", 0))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(
        s.get_operation(&OperationId::new("ghost")).await.unwrap(),
        None
    );
}

async fn operations_list_newest_first_with_ids_breaking_ties<S: OperationStore + MetadataStore>(
    s: &S,
) {
    for o in [
        op("op-b", "p1", "pg-1", 5),
        op("op-old", "p1", "pg-1", 1),
        op("op-new", "p1", "pg-1", 9),
        op("op-a", "p1", "pg-1", 5),
    ] {
        s.insert_operation(&o).await.unwrap();
    }
    let all = s
        .list_operations(&OperationFilter::default())
        .await
        .unwrap();
    assert_eq!(ids(&all), ["op-new", "op-a", "op-b", "op-old"]);
}

async fn operations_filter_by_project<S: OperationStore + MetadataStore>(s: &S) {
    s.insert_operation(&op("op-1", "p1", "pg-1", 1))
        .await
        .unwrap();
    s.insert_operation(&op("op-2", "p2", "pg-2", 2))
        .await
        .unwrap();
    s.insert_operation(&op("op-3", "p1", "pg-1", 3))
        .await
        .unwrap();
    let f = OperationFilter {
        project_id: Some(ProjectId::new("p1")),
        ..OperationFilter::default()
    };
    assert_eq!(ids(&s.list_operations(&f).await.unwrap()), ["op-3", "op-1"]);
}

async fn operations_filter_by_protection_group_id<S: OperationStore + MetadataStore>(s: &S) {
    s.insert_operation(&op("op-1", "p1", "pg-1", 1))
        .await
        .unwrap();
    s.insert_operation(&op("op-2", "p1", "pg-2", 2))
        .await
        .unwrap();
    let f = OperationFilter {
        protection_group: Some(PgRef::Id(ProtectionGroupId::new("pg-2"))),
        ..OperationFilter::default()
    };
    assert_eq!(ids(&s.list_operations(&f).await.unwrap()), ["op-2"]);
}

async fn operations_filter_by_protection_group_name_through_the_stored_groups<
    S: OperationStore + MetadataStore,
>(
    s: &S,
) {
    s.put_protection_group(&group("pg-1", "p1", "web"))
        .await
        .unwrap();
    s.put_protection_group(&group("pg-2", "p1", "db"))
        .await
        .unwrap();
    s.put_protection_group(&group("pg-3", "p2", "web"))
        .await
        .unwrap();
    s.insert_operation(&op("op-1", "p1", "pg-1", 1))
        .await
        .unwrap();
    s.insert_operation(&op("op-2", "p1", "pg-2", 2))
        .await
        .unwrap();
    s.insert_operation(&op("op-3", "p2", "pg-3", 3))
        .await
        .unwrap();
    let by_name = |name: &str, project: Option<&str>| OperationFilter {
        protection_group: Some(PgRef::Name(name.to_owned())),
        project_id: project.map(ProjectId::new),
        ..OperationFilter::default()
    };
    assert_eq!(
        ids(&s
            .list_operations(&by_name("web", Some("p1")))
            .await
            .unwrap()),
        ["op-1"]
    );
    assert_eq!(
        ids(&s.list_operations(&by_name("web", None)).await.unwrap()),
        ["op-3", "op-1"]
    );
    assert_eq!(
        ids(&s.list_operations(&by_name("db", None)).await.unwrap()),
        ["op-2"]
    );
    assert!(s
        .list_operations(&by_name("unknown", None))
        .await
        .unwrap()
        .is_empty());
}

async fn operations_filter_by_status_and_type<S: OperationStore + MetadataStore>(s: &S) {
    let mut running = op("op-1", "p1", "pg-1", 1);
    running.status = OperationStatus::Running;
    let mut test = op("op-2", "p1", "pg-1", 2);
    test.operation_type = OperationType::TestFailover;
    test.failover_type = None;
    test.status = OperationStatus::Running;
    let mut done = op("op-3", "p1", "pg-1", 3);
    done.status = OperationStatus::Completed;
    for o in [&running, &test, &done] {
        s.insert_operation(o).await.unwrap();
    }
    let running_filter = OperationFilter {
        status: Some(OperationStatus::Running),
        ..OperationFilter::default()
    };
    assert_eq!(
        ids(&s.list_operations(&running_filter).await.unwrap()),
        ["op-2", "op-1"]
    );
    let failovers = OperationFilter {
        operation_type: Some(OperationType::Failover),
        ..OperationFilter::default()
    };
    assert_eq!(
        ids(&s.list_operations(&failovers).await.unwrap()),
        ["op-3", "op-1"]
    );
    let both = OperationFilter {
        status: Some(OperationStatus::Running),
        operation_type: Some(OperationType::Failover),
        ..OperationFilter::default()
    };
    assert_eq!(ids(&s.list_operations(&both).await.unwrap()), ["op-1"]);
    let none = OperationFilter {
        status: Some(OperationStatus::RollingBack),
        ..OperationFilter::default()
    };
    assert!(s.list_operations(&none).await.unwrap().is_empty());
}

async fn a_limit_keeps_the_newest_operations<S: OperationStore + MetadataStore>(s: &S) {
    for minute in 0..10 {
        s.insert_operation(&op(&format!("op-{minute}"), "p1", "pg-1", minute))
            .await
            .unwrap();
    }
    let three = OperationFilter {
        limit: Some(3),
        ..OperationFilter::default()
    };
    assert_eq!(
        ids(&s.list_operations(&three).await.unwrap()),
        ["op-9", "op-8", "op-7"]
    );
    let zero = OperationFilter {
        limit: Some(0),
        ..OperationFilter::default()
    };
    assert!(s.list_operations(&zero).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------
// Journal
// ---------------------------------------------------------------------------------

async fn journal_sequences_start_at_zero_and_count_up_per_operation<
    S: OperationStore + MetadataStore,
>(
    s: &S,
) {
    let a = op("op-a", "p1", "pg-1", 0);
    let b = op("op-b", "p1", "pg-1", 1);
    s.insert_operation(&a).await.unwrap();
    s.insert_operation(&b).await.unwrap();
    let server = ResourceRef::Server {
        site_id: SiteId::new("site-b"),
        id: ServerId::new("srv-1"),
    };
    let events = [
        JournalEvent::StepStarted {
            step: StepId::Prepare,
        },
        JournalEvent::Intent {
            resource: server.clone(),
        },
        JournalEvent::Created { resource: server },
        JournalEvent::StepCompleted {
            step: StepId::Prepare,
        },
    ];
    let mut seqs_a = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let entry = s
            .append_journal(&a.id, t(i64::try_from(i).unwrap()), event.clone())
            .await
            .unwrap();
        seqs_a.push(entry.seq);
        if i == 1 {
            let first_b = s
                .append_journal(
                    &b.id,
                    t(10),
                    JournalEvent::Note {
                        data: serde_json::json!({"k": 1}).into(),
                    },
                )
                .await
                .unwrap();
            assert_eq!(first_b.seq, 0);
        }
    }
    assert_eq!(seqs_a, [0, 1, 2, 3]);
    let journal = s.journal(&a.id).await.unwrap();
    assert_eq!(
        journal.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(
        journal.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        events
    );
    assert!(journal.iter().all(|e| e.operation_id == a.id));
    assert_eq!(journal[3].at, t(3));
    assert_eq!(s.journal(&b.id).await.unwrap().len(), 1);
}

async fn concurrent_journal_appends_get_distinct_consecutive_sequences<
    S: OperationStore + MetadataStore,
>(
    s: &S,
) {
    let o = op("op-1", "p1", "pg-1", 0);
    s.insert_operation(&o).await.unwrap();
    let appends = (0..50).map(|i| {
        s.append_journal(
            &o.id,
            t(i),
            JournalEvent::Note {
                data: serde_json::json!(i).into(),
            },
        )
    });
    let mut seqs: Vec<u64> = futures::future::join_all(appends)
        .await
        .into_iter()
        .map(|r| r.unwrap().seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..50).collect::<Vec<u64>>());
}

async fn appending_to_the_journal_of_a_missing_operation_is_not_found<
    S: OperationStore + MetadataStore,
>(
    s: &S,
) {
    let err = s
        .append_journal(
            &OperationId::new("ghost"),
            t(0),
            JournalEvent::StepStarted {
                step: StepId::Prepare,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(s
        .journal(&OperationId::new("ghost"))
        .await
        .unwrap()
        .is_empty());
}

async fn a_journal_batch_continues_the_sequence_in_order<S: OperationStore + MetadataStore>(s: &S) {
    let o = op("op-1", "p1", "pg-1", 0);
    s.insert_operation(&o).await.unwrap();
    let first = JournalEvent::StepStarted {
        step: StepId::Prepare,
    };
    s.append_journal(&o.id, t(0), first.clone()).await.unwrap();
    let batch: Vec<_> = (1..4)
        .map(|i| {
            (
                t(i),
                JournalEvent::Note {
                    data: serde_json::json!(i).into(),
                },
            )
        })
        .collect();
    let entries = s.append_journal_batch(&o.id, batch.clone()).await.unwrap();
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let journal = s.journal(&o.id).await.unwrap();
    let mut expected = vec![(t(0), first)];
    expected.extend(batch);
    assert_eq!(
        journal
            .iter()
            .map(|e| (e.at, e.event.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    assert!(s
        .append_journal_batch(&o.id, Vec::new())
        .await
        .unwrap()
        .is_empty());
    let err = s
        .append_journal_batch(
            &OperationId::new("ghost"),
            vec![(
                t(0),
                JournalEvent::StepStarted {
                    step: StepId::Prepare,
                },
            )],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(s
        .journal(&OperationId::new("ghost"))
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------

async fn sites_round_trip_with_their_credentials<S: OperationStore + MetadataStore>(s: &S) {
    let b = site("id-b", "site-b", "b-secret");
    let a = site("id-a", "site-a", "a-secret");
    s.put_site(&b).await.unwrap();
    s.put_site(&a).await.unwrap();
    let got = s.get_site(&a.id).await.unwrap().unwrap();
    assert_eq!(site_fingerprint(&got), site_fingerprint(&a));
    let listed: Vec<String> = s
        .list_sites()
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(listed, ["site-a", "site-b"]);

    let mut changed = a.clone();
    changed.status = SiteStatus::Unreachable;
    changed.credentials.password = Some(SecretString::from("rotated".to_owned()));
    s.put_site(&changed).await.unwrap();
    let got = s.get_site(&a.id).await.unwrap().unwrap();
    assert_eq!(site_fingerprint(&got), site_fingerprint(&changed));
    assert_eq!(s.list_sites().await.unwrap().len(), 2);
    assert!(s.get_site(&SiteId::new("nope")).await.unwrap().is_none());
}

async fn deleting_a_site_removes_it_and_a_missing_one_is_not_found<
    S: OperationStore + MetadataStore,
>(
    s: &S,
) {
    let a = site("id-a", "site-a", "pw");
    s.put_site(&a).await.unwrap();
    s.delete_site(&a.id).await.unwrap();
    assert!(s.get_site(&a.id).await.unwrap().is_none());
    let err = s.delete_site(&a.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn protection_groups_round_trip_with_members_and_mappings<
    S: OperationStore + MetadataStore,
>(
    s: &S,
) {
    let pg = group("pg-1", "p1", "web");
    s.put_protection_group(&pg).await.unwrap();
    assert_eq!(
        s.get_protection_group(&pg.id).await.unwrap(),
        Some(pg.clone())
    );

    let mut failed_over = pg.clone();
    failed_over.status = PgStatus::FailedOver;
    failed_over.current_primary_site_id = SiteId::new("site-b");
    failed_over.version += 1;
    failed_over.members.clear();
    s.put_protection_group(&failed_over).await.unwrap();
    assert_eq!(
        s.get_protection_group(&pg.id).await.unwrap(),
        Some(failed_over)
    );
    assert!(s
        .get_protection_group(&ProtectionGroupId::new("nope"))
        .await
        .unwrap()
        .is_none());
}

async fn protection_group_names_are_unique_per_project<S: OperationStore + MetadataStore>(s: &S) {
    s.put_protection_group(&group("pg-1", "p1", "web"))
        .await
        .unwrap();
    let err = s
        .put_protection_group(&group("pg-2", "p1", "web"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert!(s
        .get_protection_group(&ProtectionGroupId::new("pg-2"))
        .await
        .unwrap()
        .is_none());
    // The same name in another project is another group.
    s.put_protection_group(&group("pg-3", "p2", "web"))
        .await
        .unwrap();
    // Replacing a group under its own id keeps its name.
    s.put_protection_group(&group("pg-1", "p1", "web"))
        .await
        .unwrap();
    // Renaming onto a name taken in the project is refused too.
    s.put_protection_group(&group("pg-4", "p1", "db"))
        .await
        .unwrap();
    let err = s
        .put_protection_group(&group("pg-4", "p1", "web"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        s.get_protection_group(&ProtectionGroupId::new("pg-4"))
            .await
            .unwrap()
            .map(|g| g.name),
        Some("db".to_owned())
    );
}

async fn protection_groups_list_by_name_within_a_project<S: OperationStore + MetadataStore>(s: &S) {
    s.put_protection_group(&group("pg-1", "p1", "web"))
        .await
        .unwrap();
    s.put_protection_group(&group("pg-2", "p1", "app"))
        .await
        .unwrap();
    s.put_protection_group(&group("pg-3", "p2", "db"))
        .await
        .unwrap();
    let names = |gs: Vec<ProtectionGroup>| gs.into_iter().map(|g| g.name).collect::<Vec<_>>();
    assert_eq!(
        names(
            s.list_protection_groups(Some(&ProjectId::new("p1")))
                .await
                .unwrap()
        ),
        ["app", "web"]
    );
    assert_eq!(
        names(s.list_protection_groups(None).await.unwrap()),
        ["app", "db", "web"]
    );
    assert!(s
        .list_protection_groups(Some(&ProjectId::new("p9")))
        .await
        .unwrap()
        .is_empty());
}

async fn group_ids_are_found_by_name_within_a_project_or_everywhere<
    S: OperationStore + MetadataStore,
>(
    s: &S,
) {
    for (id, project, name) in [
        ("pg-1", "p2", "web"),
        ("pg-2", "p1", "web"),
        ("pg-3", "p1", "app"),
        ("pg-4", "p3", "web"),
    ] {
        s.put_protection_group(&group(id, project, name))
            .await
            .unwrap();
    }
    let named = |project: Option<&'static str>, name: &'static str| async move {
        let project = project.map(ProjectId::new);
        s.protection_group_ids_named(project.as_ref(), name)
            .await
            .unwrap()
            .into_iter()
            .map(|id| id.into_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(named(Some("p1"), "web").await, ["pg-2"]);
    // By project, whatever the order they were stored in.
    assert_eq!(named(None, "web").await, ["pg-2", "pg-1", "pg-4"]);
    assert_eq!(named(None, "app").await, ["pg-3"]);
    assert!(named(Some("p2"), "app").await.is_empty());
    assert!(named(None, "we").await.is_empty(), "a prefix is not a name");
    s.delete_protection_group(&ProtectionGroupId::new("pg-1"))
        .await
        .unwrap();
    assert_eq!(named(None, "web").await, ["pg-2", "pg-4"]);
}

async fn policies_round_trip_with_their_tokens<S: OperationStore + MetadataStore>(s: &S) {
    s.put_protection_group(&group("pg-1", "p1", "web"))
        .await
        .unwrap();
    let p = policy("pg-1", "tok-primary", "tok-secondary");
    s.put_policy(&p).await.unwrap();
    let got = s.get_policy(&p.protection_group_id).await.unwrap().unwrap();
    assert_eq!(policy_fingerprint(&got), policy_fingerprint(&p));

    let mut rotated = p.clone();
    rotated.secondary_fa_api_token = SecretString::from("tok-rotated".to_owned());
    rotated.rpo_minutes = 5;
    s.put_policy(&rotated).await.unwrap();
    let got = s.get_policy(&p.protection_group_id).await.unwrap().unwrap();
    assert_eq!(policy_fingerprint(&got), policy_fingerprint(&rotated));
    assert!(s
        .get_policy(&ProtectionGroupId::new("nope"))
        .await
        .unwrap()
        .is_none());
}

async fn sync_states_round_trip<S: OperationStore + MetadataStore>(s: &S) {
    s.put_protection_group(&group("pg-1", "p1", "web"))
        .await
        .unwrap();
    let st = sync_state("pg-1", SyncStatusValue::InSync);
    s.put_sync_state(&st).await.unwrap();
    assert_eq!(
        s.get_sync_state(&st.protection_group_id).await.unwrap(),
        Some(st.clone())
    );
    let mut failed = st.clone();
    failed.status = SyncStatusValue::Unreachable;
    failed.last_sync_error = Some("remote site unreachable".to_owned());
    s.put_sync_state(&failed).await.unwrap();
    assert_eq!(
        s.get_sync_state(&st.protection_group_id).await.unwrap(),
        Some(failed)
    );
}

async fn policies_and_sync_states_need_their_group<S: OperationStore + MetadataStore>(s: &S) {
    let err = s.put_policy(&policy("ghost", "a", "b")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = s
        .put_sync_state(&sync_state("ghost", SyncStatusValue::InSync))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn deleting_a_group_removes_its_policy_and_sync_state<S: OperationStore + MetadataStore>(
    s: &S,
) {
    s.put_protection_group(&group("pg-1", "p1", "web"))
        .await
        .unwrap();
    s.put_protection_group(&group("pg-2", "p1", "db"))
        .await
        .unwrap();
    for pg in ["pg-1", "pg-2"] {
        s.put_policy(&policy(pg, "x", "y")).await.unwrap();
        s.put_sync_state(&sync_state(pg, SyncStatusValue::InSync))
            .await
            .unwrap();
    }
    let gone = ProtectionGroupId::new("pg-1");
    s.delete_protection_group(&gone).await.unwrap();
    assert!(s.get_protection_group(&gone).await.unwrap().is_none());
    assert!(s.get_policy(&gone).await.unwrap().is_none());
    assert!(s.get_sync_state(&gone).await.unwrap().is_none());
    let kept = ProtectionGroupId::new("pg-2");
    assert!(s.get_policy(&kept).await.unwrap().is_some());
    assert!(s.get_sync_state(&kept).await.unwrap().is_some());
    let err = s.delete_protection_group(&gone).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    // A deleted group's name is free again.
    s.put_protection_group(&group("pg-5", "p1", "web"))
        .await
        .unwrap();
}

async fn updating_a_group_keeps_its_policy_and_sync_state<S: OperationStore + MetadataStore>(
    s: &S,
) {
    let mut pg = group("pg-1", "p1", "web");
    s.put_protection_group(&pg).await.unwrap();
    s.put_policy(&policy("pg-1", "x", "y")).await.unwrap();
    s.put_sync_state(&sync_state("pg-1", SyncStatusValue::InSync))
        .await
        .unwrap();
    pg.version += 1;
    s.put_protection_group(&pg).await.unwrap();
    assert!(s.get_policy(&pg.id).await.unwrap().is_some());
    assert!(s.get_sync_state(&pg.id).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------
// Arbitrary records
// ---------------------------------------------------------------------------------

fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
    // 1970 to about 2250: inside the range every store orders correctly.
    (0i64..8_900_000_000, 0u32..1_000_000_000)
        .prop_filter_map("valid timestamp", |(secs, nanos)| {
            DateTime::from_timestamp(secs, nanos)
        })
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    // Integers, not floats: JSON text does not promise bit-exact float round trips.
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_mappings() -> impl Strategy<Value = ResourceMappings> {
    let map = || prop::collection::btree_map("\\PC{1,8}", "\\PC{1,8}", 0..3);
    (map(), map(), map()).prop_map(|(networks, flavors, images)| ResourceMappings {
        networks,
        flavors,
        images,
    })
}

fn arb_requester() -> impl Strategy<Value = Option<RequestContext>> {
    prop::option::of(
        (
            "[a-z0-9]{1,8}",
            "[a-z0-9]{1,8}",
            prop::collection::vec("[a-z_]{1,8}", 0..3),
        )
            .prop_map(|(user, project, roles)| RequestContext {
                user_id: UserId::new(user),
                project_id: ProjectId::new(project),
                roles,
            }),
    )
}

fn arb_operation() -> impl Strategy<Value = Operation> {
    let id = || "[a-z0-9-]{1,16}";
    let steps = || prop::collection::vec(prop::sample::select(StepId::ALL), 0..6);
    let identity = (id(), id(), id(), id(), id());
    let kinds = (
        prop::sample::select(OperationType::ALL),
        prop::option::of(prop::sample::select(FailoverType::ALL)),
        prop::sample::select(OperationStatus::ALL),
        any::<u8>(),
        prop::option::of(prop::sample::select(Phase::ALL)),
        prop::option::of(prop::sample::select(StepId::ALL)),
    );
    let times = (
        arb_time(),
        prop::option::of(arb_time()),
        prop::option::of(arb_time()),
        prop::option::of(arb_time()),
    );
    let outcome = (
        prop::option::of("\\PC{0,40}"),
        steps(),
        steps(),
        arb_json(),
        (
            arb_mappings(),
            any::<bool>(),
            any::<bool>(),
            arb_requester(),
        ),
    );
    (identity, kinds, times, outcome).prop_map(
        |(
            (pg, project, source, target, _),
            (operation_type, failover_type, status, progress, phase, current_step),
            (created_at, started_at, completed_at, updated_at),
            (
                error_message,
                steps_completed,
                steps_failed,
                result_data,
                (mappings, force, reverse, requested_by),
            ),
        )| Operation {
            id: OperationId::new("set-by-the-test"),
            protection_group_id: ProtectionGroupId::new(pg),
            project_id: ProjectId::new(project),
            operation_type,
            failover_type,
            status,
            progress,
            phase,
            current_step,
            source_site_id: SiteId::new(source),
            target_site_id: SiteId::new(target),
            created_at,
            started_at,
            completed_at,
            updated_at,
            error_message,
            steps_completed,
            steps_failed,
            result_data,
            parameters: OperationParameters {
                mappings,
                force,
                reverse_replication: reverse,
                requested_by,
            },
        },
    )
}

async fn arbitrary_operations_round_trip_unchanged<S: OperationStore + MetadataStore>(s: &S) {
    let config = Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed seed: the same records every run, and a failure replays exactly.
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let counter = std::cell::Cell::new(0u32);
    let outcome = runner.run(&(arb_operation(), arb_operation()), |(first, second)| {
        let n = counter.get();
        counter.set(n + 1);
        let id = OperationId::new(format!("op-{n:04}"));
        let first = Operation {
            id: id.clone(),
            ..first
        };
        let second = Operation {
            id: id.clone(),
            ..second
        };
        // The stores never wait on tokio resources, so a plain executor can drive them
        // from inside the proptest closure.
        futures::executor::block_on(async {
            s.insert_operation(&first).await.unwrap();
            prop_assert_eq!(s.get_operation(&id).await.unwrap(), Some(first));
            s.update_operation(&second).await.unwrap();
            prop_assert_eq!(s.get_operation(&id).await.unwrap(), Some(second.clone()));
            let mine = OperationFilter {
                project_id: Some(second.project_id.clone()),
                protection_group: Some(PgRef::Id(second.protection_group_id.clone())),
                ..OperationFilter::default()
            };
            let listed = s.list_operations(&mine).await.unwrap();
            prop_assert!(listed.contains(&second));
            Ok(())
        })
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------
// Instantiation
// ---------------------------------------------------------------------------------

/// A store on a fresh file, with the directory that keeps the file alive.
pub(super) fn sqlite_on_disk() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
    (dir, store)
}

macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&super::MemoryStore::new()).await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (_dir, store) = super::sqlite_on_disk();
                    super::$case(&store).await;
                }
            )*
        }
    };
}

contract_tests!(
    an_inserted_operation_reads_back_unchanged,
    a_missing_operation_reads_as_none,
    inserting_an_operation_twice_is_already_exists,
    updating_an_operation_replaces_every_field,
    updating_a_missing_operation_is_not_found,
    operations_list_newest_first_with_ids_breaking_ties,
    operations_filter_by_project,
    operations_filter_by_protection_group_id,
    operations_filter_by_protection_group_name_through_the_stored_groups,
    operations_filter_by_status_and_type,
    a_limit_keeps_the_newest_operations,
    journal_sequences_start_at_zero_and_count_up_per_operation,
    concurrent_journal_appends_get_distinct_consecutive_sequences,
    appending_to_the_journal_of_a_missing_operation_is_not_found,
    a_journal_batch_continues_the_sequence_in_order,
    sites_round_trip_with_their_credentials,
    deleting_a_site_removes_it_and_a_missing_one_is_not_found,
    protection_groups_round_trip_with_members_and_mappings,
    protection_group_names_are_unique_per_project,
    protection_groups_list_by_name_within_a_project,
    group_ids_are_found_by_name_within_a_project_or_everywhere,
    policies_round_trip_with_their_tokens,
    sync_states_round_trip,
    policies_and_sync_states_need_their_group,
    deleting_a_group_removes_its_policy_and_sync_state,
    updating_a_group_keeps_its_policy_and_sync_state,
    arbitrary_operations_round_trip_unchanged,
);
