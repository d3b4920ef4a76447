//! Cinder against wiremock: one test per endpoint.

use std::collections::BTreeMap;

use protector_core::model::ReplicationType;
use protector_core::ports::{GroupCreate, ManageVolume, VolumeStatus};
use protector_core::BackendErrorKind;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::common::{fixture, json_fixture, ok_json, status_json, MockCloud};

const VOLUME: &str = "7f3c2a53-7b8e-4d3c-9c8f-6f2f0b1a2c3d";

#[tokio::test]
async fn get_volume_reads_string_bootable_attachments_and_the_array_name() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path(&format!("/volumes/{VOLUME}"))))
        .and(header("openstack-api-version", "volume 3.21"))
        .respond_with(ok_json("cinder/volume_get.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let v = site
        .clients()
        .block_storage
        .get_volume(&VOLUME.into())
        .await
        .unwrap();
    assert_eq!(v.status, VolumeStatus::InUse);
    assert!(v.bootable);
    assert_eq!(v.size_gb, 10);
    assert_eq!(v.volume_type.as_deref(), Some("repl-async"));
    assert_eq!(
        v.attachments[0].server_id.as_str(),
        "0e44cc9c-e052-415d-afbf-469b0d384170"
    );
    assert_eq!(v.attachments[0].device.as_deref(), Some("/dev/vda"));
    assert_eq!(
        v.array_volume_name(),
        Some("volume-7f3c2a53-7b8e-4d3c-9c8f-6f2f0b1a2c3d-cinder")
    );
    assert_eq!(v.host.as_deref(), Some("cinder@pure#pure"));
    assert_eq!(v.provider_id, None);
    assert_eq!(
        v.group_id.as_ref().map(|g| g.as_str()),
        Some("b7e1f2a3-0000-4000-8000-0000000000g1")
    );
}

#[tokio::test]
async fn manage_volume_posts_to_manageable_volumes_at_microversion_3_8() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.volume_path("/manageable_volumes")))
        .and(header("openstack-api-version", "volume 3.8"))
        .and(body_json(json!({"volume": {
            "host": "cinder-vol-1@pure-dr#pure-dr",
            "ref": {"source-name": "volume-7f3c2a53-7b8e-4d3c-9c8f-6f2f0b1a2c3d-cinder"},
            "name": "db-boot-dr",
            "volume_type": "repl-async",
            "description": "DR copy of 7f3c2a53",
            "bootable": true,
            "metadata": {"dr_source_volume": VOLUME}}})))
        .respond_with(
            ResponseTemplate::new(202).set_body_string(fixture("cinder/manage_response.json")),
        )
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let v = site
        .clients()
        .block_storage
        .manage_volume(&ManageVolume {
            source_name: "volume-7f3c2a53-7b8e-4d3c-9c8f-6f2f0b1a2c3d-cinder".into(),
            host: "cinder-vol-1@pure-dr#pure-dr".into(),
            name: "db-boot-dr".into(),
            volume_type: Some("repl-async".into()),
            bootable: true,
            description: Some("DR copy of 7f3c2a53".into()),
            metadata: BTreeMap::from([("dr_source_volume".to_owned(), VOLUME.to_owned())]),
        })
        .await
        .unwrap();
    assert_eq!(v.id.as_str(), "2b955850-f177-45f7-9f49-ecb2c256d161");
    assert_eq!(v.status, VolumeStatus::Creating);
    // The legacy view spells nulls as "null".
    assert_eq!(v.volume_type, None);
}

/// The fixture volume with id `id`.
fn vol(id: &str) -> serde_json::Value {
    let mut v = json_fixture("cinder/volume_get.json")["volume"].clone();
    v["id"] = json!(id);
    v
}

#[tokio::test]
async fn list_volumes_follows_volumes_links() {
    let cloud = MockCloud::start().await;
    let next = format!(
        "{}/volume/v3/p/volumes/detail?limit=2&marker=v2",
        cloud.base()
    );
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/volumes/detail")))
        .and(query_param("marker", "v2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"volumes": [vol("v3")]})))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/volumes/detail")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "volumes": [vol("v1"), vol("v2")],
            "volumes_links": [{"rel": "next", "href": next}]})))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let ids: Vec<_> = site
        .clients()
        .block_storage
        .list_volumes()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id.into_string())
        .collect();
    assert_eq!(ids, vec!["v1", "v2", "v3"]);
}

/// The volume a page marker names is deleted while the listing goes on: Cinder refuses
/// the next page (400, "marker [...] not found") and the listing starts again.
#[tokio::test]
async fn list_volumes_starts_again_when_its_marker_was_deleted_meanwhile() {
    let cloud = MockCloud::start().await;
    let next = format!(
        "{}/volume/v3/p/volumes/detail?limit=2&marker=v2",
        cloud.base()
    );
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/volumes/detail")))
        .and(query_param("marker", "v2"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "badRequest": {"code": 400, "message": "marker [v2] not found"}})))
        .with_priority(1)
        .expect(1)
        .mount(&cloud.server)
        .await;
    // First walk: v1, v2 and a next link; second walk: v2 is gone.
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/volumes/detail")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "volumes": [vol("v1"), vol("v2")],
            "volumes_links": [{"rel": "next", "href": next}]})))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/volumes/detail")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"volumes": [vol("v1"), vol("v3")]})),
        )
        .with_priority(3)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let ids: Vec<_> = site
        .clients()
        .block_storage
        .list_volumes()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id.into_string())
        .collect();
    assert_eq!(ids, vec!["v1", "v3"]);
}

#[tokio::test]
async fn list_volume_types_reads_replication_extra_specs() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/types")))
        .respond_with(ok_json("cinder/types.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let storage = site.clients().block_storage;
    let t = storage
        .find_volume_type("repl-async")
        .await
        .unwrap()
        .unwrap();
    assert!(t.replication_enabled());
    assert_eq!(t.replication_type(), Some(ReplicationType::Async));
    assert_eq!(t.backend_name(), Some("pure"));
    assert_eq!(storage.list_volume_types().await.unwrap().len(), 2);
}

#[tokio::test]
async fn list_volume_types_follows_cinders_singular_volume_type_links() {
    let cloud = MockCloud::start().await;
    let template = json_fixture("cinder/types.json")["volume_types"][0].clone();
    let vt = |id: &str| {
        let mut t = template.clone();
        t["id"] = json!(id);
        t["name"] = json!(format!("type-{id}"));
        t
    };
    let next = format!("{}/volume/v3/p/types?limit=2&marker=t2", cloud.base());
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/types")))
        .and(query_param("marker", "t2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"volume_types": [vt("t3")]})))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/types")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "volume_types": [vt("t1"), vt("t2")],
            "volume_type_links": [{"rel": "next", "href": next}]})))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let storage = site.clients().block_storage;
    let ids: Vec<_> = storage
        .list_volume_types()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.into_string())
        .collect();
    assert_eq!(ids, vec!["t1", "t2", "t3"]);
}

#[tokio::test]
async fn list_volume_services_keeps_the_cinder_volume_hosts() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/os-services")))
        .and(query_param("binary", "cinder-volume"))
        .respond_with(ok_json("cinder/services.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let services = site
        .clients()
        .block_storage
        .list_volume_services()
        .await
        .unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].host, "cinder-vol-1@pure-dr");
    assert_eq!(
        (services[0].status.as_str(), services[0].state.as_str()),
        ("enabled", "up")
    );
    assert_eq!(services[0].zone.as_deref(), Some("az2"));
}

#[tokio::test]
async fn unmanage_posts_os_unmanage_and_delete_sends_delete() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(
            cloud.volume_path(&format!("/volumes/{VOLUME}/action")),
        ))
        .and(body_json(json!({"os-unmanage": {}})))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(cloud.volume_path(&format!("/volumes/{VOLUME}"))))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let storage = site.clients().block_storage;
    storage.unmanage_volume(&VOLUME.into()).await.unwrap();
    storage.delete_volume(&VOLUME.into()).await.unwrap();
}

#[tokio::test]
async fn deleting_an_attached_volume_is_invalid_with_cinders_message() {
    let cloud = MockCloud::start().await;
    Mock::given(method("DELETE"))
        .and(path(cloud.volume_path(&format!("/volumes/{VOLUME}"))))
        .respond_with(status_json(400, "cinder/error_invalid_delete.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .block_storage
        .delete_volume(&VOLUME.into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Invalid);
    assert!(err
        .message
        .starts_with("Invalid volume: Volume status must be available"));
}

#[tokio::test]
async fn create_group_posts_at_microversion_3_13() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.volume_path("/groups")))
        .and(header("openstack-api-version", "volume 3.13"))
        .and(body_json(json!({"group": {
            "name": "pg-db", "description": "protection group db",
            "group_type": "consistent-snapshots",
            "volume_types": ["5fed9d7c-3f4a-4f4b-9d6c-1b2a3c4d5e6f"]}})))
        .respond_with(
            ResponseTemplate::new(202).set_body_string(fixture("cinder/group_create.json")),
        )
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let g = site
        .clients()
        .block_storage
        .create_group(&GroupCreate {
            name: "pg-db".into(),
            description: Some("protection group db".into()),
            group_type: "consistent-snapshots".into(),
            volume_types: vec!["5fed9d7c-3f4a-4f4b-9d6c-1b2a3c4d5e6f".into()],
        })
        .await
        .unwrap();
    assert_eq!(g.id.as_str(), "6f519a48-3183-46cf-a32f-41815f816666");
    assert_eq!(g.status, "creating");
}

#[tokio::test]
async fn get_group_lists_its_volumes_at_microversion_3_25() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(
            cloud.volume_path("/groups/b7e1f2a3-0000-4000-8000-0000000000g1"),
        ))
        .and(query_param("list_volume", "True"))
        .and(header("openstack-api-version", "volume 3.25"))
        .respond_with(ok_json("cinder/group_get.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let g = site
        .clients()
        .block_storage
        .get_group(&"b7e1f2a3-0000-4000-8000-0000000000g1".into())
        .await
        .unwrap();
    assert_eq!(g.status, "available");
    assert_eq!(g.volumes.len(), 2);
    assert_eq!(
        g.volume_types[0].as_str(),
        "5fed9d7c-3f4a-4f4b-9d6c-1b2a3c4d5e6f"
    );
}

#[tokio::test]
async fn update_group_sends_comma_separated_ids() {
    let cloud = MockCloud::start().await;
    Mock::given(method("PUT"))
        .and(path(cloud.volume_path("/groups/g1")))
        .and(header("openstack-api-version", "volume 3.13"))
        .and(body_json(
            json!({"group": {"add_volumes": "a,b", "remove_volumes": "c"}}),
        ))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    site.clients()
        .block_storage
        .update_group(&"g1".into(), &["a".into(), "b".into()], &["c".into()])
        .await
        .unwrap();
}

#[tokio::test]
async fn update_group_with_nothing_to_change_makes_no_call() {
    let cloud = MockCloud::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(202))
        .expect(0)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    site.clients()
        .block_storage
        .update_group(&"g1".into(), &[], &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_group_posts_the_delete_action_with_the_volumes_flag() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.volume_path("/groups/g1/action")))
        .and(body_json(json!({"delete": {"delete-volumes": false}})))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    site.clients()
        .block_storage
        .delete_group(&"g1".into(), false)
        .await
        .unwrap();
}
