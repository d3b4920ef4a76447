//! Nova against wiremock: one test per endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use protector_core::ports::{
    BlockDevice, NetworkAttachment, ServerCreate, ServerStatus, WaitPolicy,
};
use protector_core::BackendErrorKind;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::common::{json_fixture, ok_json, status_json, MockCloud, PROJECT_ID};

const SERVER: &str = "0e44cc9c-e052-415d-afbf-469b0d384170";

async fn mount_server(cloud: &MockCloud) {
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(&format!("/servers/{SERVER}"))))
        .and(header("openstack-api-version", "compute 2.47"))
        .and(header("x-openstack-nova-api-version", "2.47"))
        .respond_with(ok_json("nova/server_get.json"))
        .mount(&cloud.server)
        .await;
}

#[tokio::test]
async fn get_server_maps_nova_fields_and_orders_nics_by_interface() {
    let cloud = MockCloud::start().await;
    mount_server(&cloud).await;
    Mock::given(method("GET"))
        .and(path(
            cloud.compute_path(&format!("/servers/{SERVER}/os-interface")),
        ))
        .respond_with(ok_json("nova/os_interface.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let s = site
        .clients()
        .compute
        .get_server(&SERVER.into())
        .await
        .unwrap();
    assert_eq!(s.status, ServerStatus::Active);
    assert_eq!(s.project_id.as_str(), PROJECT_ID);
    assert_eq!(s.flavor_name.as_deref(), Some("m1.small"));
    assert_eq!(s.flavor_id.as_str(), "m1.small");
    assert_eq!(s.image_id, None);
    assert_eq!(s.key_name.as_deref(), Some("ops-key"));
    assert_eq!(s.security_groups, vec!["default", "db"]);
    assert_eq!(s.metadata.get("dr_plan").map(String::as_str), Some("p1"));
    assert_eq!(s.availability_zone.as_deref(), Some("nova"));
    assert_eq!(
        s.volumes_attached
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>(),
        vec![
            "7f3c2a53-7b8e-4d3c-9c8f-6f2f0b1a2c3d",
            "9a8b7c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
        ]
    );
    assert_eq!(s.addresses.len(), 2);
    assert_eq!(
        s.addresses[0].network_id.as_str(),
        "3cb9bc59-5699-4588-a4b1-b87f96708bc6"
    );
    assert_eq!(s.addresses[0].network_name, "private");
    assert_eq!(s.addresses[0].fixed_ip.as_deref(), Some("10.0.0.5"));
    assert_eq!(
        s.addresses[0].port_id.as_ref().map(|p| p.as_str()),
        Some("ce531f90-199f-48c0-816c-13e38010b442")
    );
    assert_eq!(s.addresses[1].network_name, "storage");
    assert_eq!(s.fault, None);
}

#[tokio::test]
async fn get_server_keeps_network_names_when_os_interface_is_forbidden() {
    let cloud = MockCloud::start().await;
    mount_server(&cloud).await;
    Mock::given(method("GET"))
        .and(path(
            cloud.compute_path(&format!("/servers/{SERVER}/os-interface")),
        ))
        .respond_with(status_json(403, "nova/error_quota_forbidden.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let s = site
        .clients()
        .compute
        .get_server(&SERVER.into())
        .await
        .unwrap();
    let names: Vec<_> = s
        .addresses
        .iter()
        .map(|a| a.network_name.as_str())
        .collect();
    assert_eq!(names, vec!["private", "storage"]);
    assert_eq!(s.addresses[0].fixed_ip.as_deref(), Some("10.0.0.5"));
}

#[tokio::test]
async fn get_missing_server_is_not_found_with_novas_message_and_request_id() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(
            "/servers/3fdb6c0e-6a4f-4d7e-9a43-0b6f1f0e0000",
        )))
        .respond_with(
            status_json(404, "nova/error_item_not_found.json")
                .insert_header("x-compute-request-id", "req-compute-legacy"),
        )
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .compute
        .get_server(&"3fdb6c0e-6a4f-4d7e-9a43-0b6f1f0e0000".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    assert_eq!(
        err.message,
        "Instance 3fdb6c0e-6a4f-4d7e-9a43-0b6f1f0e0000 could not be found."
    );
    assert_eq!(
        err.request_id.as_deref(),
        Some("req-00000000-0000-4000-8000-0000000000e1")
    );
}

fn server_page(ids: &[&str], next: Option<&str>, base: &str) -> serde_json::Value {
    let template = json_fixture("nova/server_get.json")["server"].clone();
    let servers: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut s = template.clone();
            s["id"] = json!(id);
            s["name"] = json!(format!("vm-{id}"));
            s
        })
        .collect();
    let mut page = json!({ "servers": servers });
    if let Some(marker) = next {
        page["servers_links"] = json!([{"rel": "next",
            "href": format!("{base}/compute/v2.1/servers/detail?limit=2&marker={marker}")}]);
    }
    page
}

#[tokio::test]
async fn list_servers_follows_servers_links_until_the_last_page() {
    let cloud = MockCloud::start().await;
    let base = cloud.base();
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/servers/detail")))
        .and(query_param("marker", "s2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(server_page(&["s3"], None, &base)))
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/servers/detail")))
        .and(query_param("limit", "2"))
        .and(header("openstack-api-version", "compute 2.47"))
        .respond_with(ResponseTemplate::new(200).set_body_json(server_page(
            &["s1", "s2"],
            Some("s2"),
            &base,
        )))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site =
        protector_openstack::OpenStackSite::connect(cloud.config().page_size(2).build().unwrap())
            .await
            .unwrap();
    let ids: Vec<_> = site
        .clients()
        .compute
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id.into_string())
        .collect();
    assert_eq!(ids, vec!["s1", "s2", "s3"]);
}

#[tokio::test]
async fn create_server_posts_a_boot_from_volume_body() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.compute_path("/servers")))
        .and(header("openstack-api-version", "compute 2.47"))
        .and(body_json(json!({"server": {
            "name": "db-01-dr",
            "flavorRef": "3",
            "key_name": "ops-key",
            "availability_zone": "nova",
            "metadata": {"dr_plan": "p1"},
            "networks": [{"uuid": "3cb9bc59-5699-4588-a4b1-b87f96708bc6", "fixed_ip": "10.0.0.5"}],
            "security_groups": [{"name": "default"}],
            "block_device_mapping_v2": [
                {"boot_index": 0, "uuid": "vol-boot", "source_type": "volume",
                 "destination_type": "volume", "delete_on_termination": false},
                {"boot_index": null, "uuid": "vol-data", "source_type": "volume",
                 "destination_type": "volume", "delete_on_termination": false}]}})))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header(
                    "location",
                    "http://n/v2.1/servers/f5dc173b-6804-445a-a6d8-c705dad5b5eb",
                )
                .set_body_string(crate::common::fixture("nova/create_server.json")),
        )
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let req = ServerCreate {
        name: "db-01-dr".into(),
        flavor_id: "3".into(),
        block_devices: vec![
            BlockDevice {
                volume_id: "vol-boot".into(),
                boot_index: Some(0),
                delete_on_termination: false,
            },
            BlockDevice {
                volume_id: "vol-data".into(),
                boot_index: None,
                delete_on_termination: false,
            },
        ],
        networks: vec![NetworkAttachment {
            network_id: "3cb9bc59-5699-4588-a4b1-b87f96708bc6".into(),
            fixed_ip: Some("10.0.0.5".into()),
        }],
        key_name: Some("ops-key".into()),
        security_groups: vec!["default".into()],
        metadata: BTreeMap::from([("dr_plan".to_owned(), "p1".to_owned())]),
        availability_zone: Some("nova".into()),
    };
    let s = site.clients().compute.create_server(&req).await.unwrap();
    assert_eq!(s.id.as_str(), "f5dc173b-6804-445a-a6d8-c705dad5b5eb");
    assert_eq!(s.status, ServerStatus::Build);
    assert_eq!(s.project_id.as_str(), PROJECT_ID);
}

#[tokio::test]
async fn create_server_without_networks_asks_for_none() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.compute_path("/servers")))
        .and(wiremock::matchers::body_partial_json(
            json!({"server": {"networks": "none"}}),
        ))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_string(crate::common::fixture("nova/create_server.json")),
        )
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let req = ServerCreate {
        name: "isolated".into(),
        flavor_id: "1".into(),
        block_devices: vec![],
        networks: vec![],
        key_name: None,
        security_groups: vec![],
        metadata: BTreeMap::new(),
        availability_zone: None,
    };
    site.clients().compute.create_server(&req).await.unwrap();
}

#[tokio::test]
async fn stop_server_posts_os_stop() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(
            cloud.compute_path(&format!("/servers/{SERVER}/action")),
        ))
        .and(body_json(json!({"os-stop": null})))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    site.clients()
        .compute
        .stop_server(&SERVER.into())
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_server_is_idempotent_on_an_already_stopped_server() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(
            cloud.compute_path(&format!("/servers/{SERVER}/action")),
        ))
        .respond_with(status_json(409, "nova/error_conflict_stop.json"))
        .expect(1)
        .mount(&cloud.server)
        .await;
    let mut stopped = json_fixture("nova/server_get.json");
    stopped["server"]["status"] = json!("SHUTOFF");
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(&format!("/servers/{SERVER}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(stopped))
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            cloud.compute_path(&format!("/servers/{SERVER}/os-interface")),
        ))
        .respond_with(ok_json("nova/os_interface.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    site.clients()
        .compute
        .stop_server(&SERVER.into())
        .await
        .unwrap();
}

#[tokio::test]
async fn start_server_on_a_server_in_error_keeps_novas_conflict() {
    let cloud = MockCloud::start().await;
    Mock::given(method("POST"))
        .and(path(cloud.compute_path(
            "/servers/5b3f0f2a-0d36-4b4e-9b5e-2d3f1c1b0a99/action",
        )))
        .and(body_json(json!({"os-start": null})))
        .respond_with(status_json(409, "nova/error_conflict_stop.json"))
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(
            "/servers/5b3f0f2a-0d36-4b4e-9b5e-2d3f1c1b0a99",
        )))
        .respond_with(ok_json("nova/server_error.json"))
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(
            "/servers/5b3f0f2a-0d36-4b4e-9b5e-2d3f1c1b0a99/os-interface",
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"interfaceAttachments": []})))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let err = site
        .clients()
        .compute
        .start_server(&"5b3f0f2a-0d36-4b4e-9b5e-2d3f1c1b0a99".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Conflict);
}

#[tokio::test]
async fn delete_server_sends_delete_and_reports_a_gone_server_as_not_found() {
    let cloud = MockCloud::start().await;
    Mock::given(method("DELETE"))
        .and(path(cloud.compute_path(&format!("/servers/{SERVER}"))))
        .respond_with(ResponseTemplate::new(204))
        .up_to_n_times(1)
        .expect(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(cloud.compute_path(&format!("/servers/{SERVER}"))))
        .respond_with(status_json(404, "nova/error_item_not_found.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let compute = site.clients().compute;
    compute.delete_server(&SERVER.into()).await.unwrap();
    let err = compute.delete_server(&SERVER.into()).await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
}

#[tokio::test]
async fn list_flavors_reads_flavor_details_and_find_flavor_matches_names() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/flavors/detail")))
        .respond_with(ok_json("nova/flavors_detail.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let compute = site.clients().compute;
    let flavors = compute.list_flavors().await.unwrap();
    assert_eq!(flavors[1].name, "m1.small");
    assert_eq!(
        (flavors[1].vcpus, flavors[1].ram_mb, flavors[1].disk_gb),
        (1, 2048, 20)
    );
    let found = compute.find_flavor("m1.small").await.unwrap().unwrap();
    assert_eq!(found.id.as_str(), "2");
}

#[tokio::test]
async fn waiting_for_active_fails_with_novas_fault_when_the_server_errors() {
    let cloud = MockCloud::start().await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(
            "/servers/5b3f0f2a-0d36-4b4e-9b5e-2d3f1c1b0a99",
        )))
        .respond_with(ok_json("nova/server_error.json"))
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(
            "/servers/5b3f0f2a-0d36-4b4e-9b5e-2d3f1c1b0a99/os-interface",
        )))
        .respond_with(status_json(404, "nova/error_item_not_found.json"))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let policy = WaitPolicy::new(Duration::from_secs(5))
        .with_intervals(Duration::from_millis(10), Duration::from_millis(20));
    let err = site
        .clients()
        .compute
        .wait_for_status(
            &"5b3f0f2a-0d36-4b4e-9b5e-2d3f1c1b0a99".into(),
            ServerStatus::Active,
            &policy,
        )
        .await
        .unwrap_err();
    assert!(err.message.contains("is not bootable"), "{}", err.message);
}
