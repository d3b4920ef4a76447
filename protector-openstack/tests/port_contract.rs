//! The shared port conformance checks (`protector_core::ports::contract`), run against
//! the HTTP clients over wiremock. The simulator runs the same checks.

use std::time::Duration;

use protector_core::ports::contract::{
    get_missing_server_is_not_found, list_servers_returns_everything,
    list_volumes_returns_everything, managed_volume_appears, server_state_agrees_with_the_server,
};
use protector_core::ports::ManageVolume;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::common::{fixture, json_fixture, ok_json, status_json, MockCloud};

/// Nova answers 404 for the server `missing`.
async fn mount_missing_server(cloud: &MockCloud) {
    Mock::given(method("GET"))
        .and(path(cloud.compute_path("/servers/missing")))
        .respond_with(status_json(404, "nova/error_item_not_found.json"))
        .mount(&cloud.server)
        .await;
}

#[tokio::test]
async fn nova_client_reports_a_missing_server_as_not_found() {
    let cloud = MockCloud::start().await;
    mount_missing_server(&cloud).await;
    let site = cloud.site().await;
    get_missing_server_is_not_found(site.clients().compute.as_ref(), &"missing".into())
        .await
        .unwrap();
}

#[tokio::test]
async fn nova_client_reads_a_server_state_that_agrees_with_the_server() {
    let cloud = MockCloud::start().await;
    let id = "5b3f0f2a-0d36-4b4e-9b5e-2d3f1c1b0a99";
    Mock::given(method("GET"))
        .and(path(cloud.compute_path(&format!("/servers/{id}"))))
        .respond_with(ok_json("nova/server_error.json"))
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            cloud.compute_path(&format!("/servers/{id}/os-interface")),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"interfaceAttachments": []})))
        .mount(&cloud.server)
        .await;
    mount_missing_server(&cloud).await;
    let site = cloud.site().await;
    let compute = site.clients().compute;
    server_state_agrees_with_the_server(compute.as_ref(), &id.into(), &"missing".into())
        .await
        .unwrap();
    // The state carries Nova's fault, which a status wait reports.
    let state = compute.get_server_state(&id.into()).await.unwrap();
    assert_eq!(state.status, protector_core::ports::ServerStatus::Error);
    assert!(state.fault.is_some_and(|f| !f.is_empty()));
}

#[tokio::test]
async fn cinder_client_makes_a_managed_volume_appear() {
    let cloud = MockCloud::start().await;
    let id = "2b955850-f177-45f7-9f49-ecb2c256d161";
    Mock::given(method("POST"))
        .and(path(cloud.volume_path("/manageable_volumes")))
        .respond_with(
            ResponseTemplate::new(202).set_body_string(fixture("cinder/manage_response.json")),
        )
        .mount(&cloud.server)
        .await;
    let mut creating = json_fixture("cinder/volume_available_after_manage.json");
    creating["volume"]["status"] = json!("creating");
    Mock::given(method("GET"))
        .and(path(cloud.volume_path(&format!("/volumes/{id}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(creating))
        .up_to_n_times(1)
        .mount(&cloud.server)
        .await;
    Mock::given(method("GET"))
        .and(path(cloud.volume_path(&format!("/volumes/{id}"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(fixture("cinder/volume_available_after_manage.json")),
        )
        .mount(&cloud.server)
        .await;
    let available = json_fixture("cinder/volume_available_after_manage.json")["volume"].clone();
    Mock::given(method("GET"))
        .and(path(cloud.volume_path("/volumes/detail")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"volumes": [available]})))
        .mount(&cloud.server)
        .await;
    let site = cloud.site().await;
    let request = ManageVolume {
        source_name: "volume-7f3c2a53-7b8e-4d3c-9c8f-6f2f0b1a2c3d-cinder".into(),
        host: "cinder-vol-1@pure-dr#pure-dr".into(),
        name: "db-boot-dr".into(),
        volume_type: Some("repl-async".into()),
        bootable: true,
        description: None,
        metadata: Default::default(),
    };
    let got = managed_volume_appears(
        site.clients().block_storage.as_ref(),
        &request,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(got.as_str(), id);
}

#[tokio::test]
async fn nova_and_cinder_clients_list_every_page() {
    let cloud = MockCloud::start().await;
    let server = json_fixture("nova/server_get.json")["server"].clone();
    let volume = json_fixture("cinder/volume_get.json")["volume"].clone();
    let base = cloud.base();
    // Five servers and five volumes in pages of two.
    for (kind, template, p, link_key) in [
        (
            "servers",
            &server,
            cloud.compute_path("/servers/detail"),
            "servers_links",
        ),
        (
            "volumes",
            &volume,
            cloud.volume_path("/volumes/detail"),
            "volumes_links",
        ),
    ] {
        let ids: Vec<String> = (1..=5).map(|i| format!("{kind}-{i}")).collect();
        for (page, chunk) in ids.chunks(2).enumerate() {
            let items: Vec<_> = chunk
                .iter()
                .map(|id| {
                    let mut v = template.clone();
                    v["id"] = json!(id);
                    v
                })
                .collect();
            let mut body = json!({ kind: items });
            if chunk.len() == 2 {
                let last = chunk.last().unwrap();
                body[link_key] =
                    json!([{"rel": "next", "href": format!("{base}{p}?limit=2&marker={last}")}]);
            }
            let mut mock = Mock::given(method("GET")).and(path(p.clone()));
            mock = if page == 0 {
                mock.and(wiremock::matchers::query_param_is_missing("marker"))
            } else {
                mock.and(query_param("marker", ids[page * 2 - 1].as_str()))
            };
            mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
                .expect(1)
                .mount(&cloud.server)
                .await;
        }
    }
    let site =
        protector_openstack::OpenStackSite::connect(cloud.config().page_size(2).build().unwrap())
            .await
            .unwrap();
    let clients = site.clients();
    list_servers_returns_everything(clients.compute.as_ref(), 5)
        .await
        .unwrap();
    list_volumes_returns_everything(clients.block_storage.as_ref(), 5)
        .await
        .unwrap();
}
