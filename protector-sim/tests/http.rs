//! The HTTP mode driven by the real `protector-openstack` clients over loopback, in
//! real time.

use std::time::Duration;

use protector_core::ports::BlockStorage as _;
use protector_core::ports::{BlockDevice, ManageVolume, ServerCreate, ServerStatus, VolumeStatus};
use protector_core::BackendErrorKind;
use protector_openstack::{ConfigLoader, OpenStackSite};
use protector_purestorage::array::{
    PgSnapshotOptions, PgSnapshotQuery, SnapshotOrder, VolumeQuery, VolumeSnapshotQuery,
};
use protector_purestorage::{FlashArray, FlashArrayClient};
use protector_sim::http::{ServeOptions, SimServer};
use protector_sim::world::TYPE_ASYNC;
use protector_sim::{LatencyProfile, SimSite, SimWorld, WorkloadSpec};
use secrecy::SecretString;
use serde_json::{json, Value};

async fn serve(seed: u64) -> (SimServer, tempfile::TempDir) {
    let world = SimWorld::builder()
        .seed(seed)
        .profile(LatencyProfile::zero())
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = SimServer::start(world, dir.path()).await.unwrap();
    (server, dir)
}

fn loader(server: &SimServer) -> ConfigLoader {
    ConfigLoader::new([(
        "OS_CLIENT_CONFIG_FILE",
        server.clouds_yaml_path().display().to_string(),
    )])
}

async fn connect(server: &SimServer, cloud: &str) -> OpenStackSite {
    let config = loader(server)
        .load_builder(Some(cloud))
        .unwrap()
        .page_size(2)
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    OpenStackSite::connect(config).await.unwrap()
}

fn poll_policy() -> protector_core::ports::WaitPolicy {
    protector_core::ports::WaitPolicy::new(Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_written_clouds_yaml_yields_a_project_scoped_token_with_roles() {
    let (server, _dir) = serve(1).await;
    let site = connect(&server, "site-a").await;
    let ctx = site.request_context().await.unwrap();
    let info = server.world().site(SimSite::A);
    assert_eq!(ctx.project_id, info.project_id("tenant-a").unwrap());
    assert_eq!(&ctx.user_id, &info.users["alice"]);
    assert!(ctx.roles.iter().any(|r| r == "member"), "{:?}", ctx.roles);
    let admin = connect(&server, "site-b-admin").await;
    let actx = admin.request_context().await.unwrap();
    assert!(actx.roles.iter().any(|r| r == "admin"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_credential_authenticates_and_a_scope_with_it_is_refused() {
    let (server, _dir) = serve(2).await;
    let site = connect(&server, "site-a-appcred").await;
    let ctx = site.request_context().await.unwrap();
    assert_eq!(
        ctx.project_id,
        server
            .world()
            .site(SimSite::A)
            .project_id("tenant-a")
            .unwrap()
    );
    let app = server
        .credentials(SimSite::A)
        .application_credential("alice")
        .unwrap()
        .clone();
    let resp = reqwest::Client::new()
        .post(format!("{}/auth/tokens", server.auth_url(SimSite::A)))
        .json(&json!({"auth": {
            "identity": {"methods": ["application_credential"],
                "application_credential": {"id": app.id, "secret": app.secret}},
            "scope": {"project": {"name": "tenant-a", "domain": {"id": "default"}}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_gets_keystones_401_body_and_no_token() {
    let (server, _dir) = serve(3).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/auth/tokens", server.auth_url(SimSite::A)))
        .json(&json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "alice", "domain": {"name": "Default"}, "password": "not-it"}}},
            "scope": {"project": {"name": "tenant-a", "domain": {"id": "default"}}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("x-subject-token").is_none());
    assert!(resp
        .headers()
        .get("www-authenticate")
        .is_some_and(|v| v.to_str().unwrap().starts_with("Keystone uri=")));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["title"], "Unauthorized");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_listed_across_pages_and_read_with_their_volumes_and_ports() {
    let (server, _dir) = serve(4).await;
    let workload = server
        .world()
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(3))
        .unwrap();
    let site = connect(&server, "site-a").await;
    let compute = site.clients().compute;
    let listed = compute.list_servers().await.unwrap();
    let mut ids: Vec<_> = listed.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    let mut expected: Vec<_> = workload.servers.iter().map(|s| s.id.clone()).collect();
    expected.sort();
    assert_eq!(ids, expected, "page size 2 must still return all 3 servers");
    let vm = &workload.servers[0];
    let got = compute.get_server(&vm.id).await.unwrap();
    assert_eq!(got.name, vm.name);
    assert!(got.volumes_attached.contains(&vm.boot_volume.id));
    assert!(!got.addresses.is_empty());
    let network_ids: Vec<_> = server
        .world()
        .site(SimSite::A)
        .networks
        .values()
        .cloned()
        .collect();
    assert!(got
        .addresses
        .iter()
        .all(|a| network_ids.contains(&a.network_id) && a.port_id.is_some()));
    let flavors = compute.list_flavors().await.unwrap();
    assert!(compute
        .find_flavor(got.flavor_id.as_str())
        .await
        .unwrap()
        .is_some_and(|f| flavors.contains(&f)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_server_is_item_not_found_with_request_id_and_echoed_microversion() {
    let (server, _dir) = serve(5).await;
    let site = connect(&server, "site-a").await;
    let err = site
        .clients()
        .compute
        .get_server(&"no-such-server".to_owned().into())
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::NotFound);
    assert_eq!(err.status, Some(404));
    assert!(err.request_id.is_some_and(|r| r.starts_with("req-")));
    let token = site.session().token().await.unwrap();
    let project = token.project_id.clone();
    drop(token);
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/v2.1/servers/no-such-server",
            server.endpoints(SimSite::A).compute
        ))
        .header(
            "x-auth-token",
            fresh_token(&server, "alice", "tenant-a").await,
        )
        .header("openstack-api-version", "compute 2.47")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["openstack-api-version"], "compute 2.47");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["itemNotFound"]["code"], 404);
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/v3/{project}/volumes/detail",
            server.endpoints(SimSite::A).block_storage
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "no token, no volumes");
    server.stop().await;
}

async fn fresh_token(server: &SimServer, user: &str, project: &str) -> String {
    let password = server.credentials(SimSite::A).password(user).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/auth/tokens", server.auth_url(SimSite::A)))
        .json(&json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_array_volume_becomes_available_unmanage_removes_it_and_policy_refuses_with_403()
{
    let (server, _dir) = serve(6).await;
    let world = server.world().clone();
    world
        .create_array_volume(SimSite::B, "restored-db-1", 15)
        .unwrap();
    let admin = connect(&server, "site-b-admin").await;
    let cinder = admin.clients().block_storage;
    let info = world.site(SimSite::B);
    let managed = cinder
        .manage_volume(&ManageVolume {
            source_name: "restored-db-1".to_owned(),
            host: info.volume_host.clone(),
            name: "restored-db".to_owned(),
            volume_type: Some(TYPE_ASYNC.to_owned()),
            bootable: true,
            description: None,
            metadata: Default::default(),
        })
        .await
        .unwrap();
    let ready = cinder
        .wait_for_available(&managed.id, &poll_policy())
        .await
        .unwrap();
    assert_eq!(ready.status, VolumeStatus::Available);
    assert_eq!(ready.size_gb, 15);
    assert!(ready.bootable);
    assert!(cinder
        .list_volumes()
        .await
        .unwrap()
        .iter()
        .any(|v| v.id == managed.id));
    cinder.unmanage_volume(&managed.id).await.unwrap();
    cinder
        .wait_for_deleted(&managed.id, &poll_policy())
        .await
        .unwrap();
    world.deny_volume_manage(SimSite::B);
    let refused = cinder
        .manage_volume(&ManageVolume {
            source_name: "restored-db-1".to_owned(),
            host: info.volume_host.clone(),
            name: "nope".to_owned(),
            volume_type: None,
            bootable: false,
            description: None,
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.kind, BackendErrorKind::Forbidden);
    assert_eq!(refused.status, Some(403));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_services_groups_and_networks_come_back_through_the_real_clients() {
    let (server, _dir) = serve(7).await;
    let admin = connect(&server, "site-a-admin").await;
    let clients = admin.clients();
    let types = clients.block_storage.list_volume_types().await.unwrap();
    let async_type = types.iter().find(|t| t.name == TYPE_ASYNC).unwrap();
    assert!(async_type.replication_enabled());
    let services = clients.block_storage.list_volume_services().await.unwrap();
    assert!(services
        .iter()
        .any(|s| s.host == server.world().site(SimSite::A).service_host));
    let networks = clients.networking.list_networks().await.unwrap();
    assert!(!networks.is_empty());
    let one = clients
        .networking
        .get_network(&networks[0].id)
        .await
        .unwrap();
    assert_eq!(one, networks[0]);
    let missing = clients
        .networking
        .get_network(&"nope".to_owned().into())
        .await
        .unwrap_err();
    assert_eq!(missing.kind, BackendErrorKind::NotFound);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_booted_over_http_goes_active_stops_starts_and_is_deleted() {
    let (server, _dir) = serve(8).await;
    let world = server.world().clone();
    let workload = world
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(1))
        .unwrap();
    let site = connect(&server, "site-a").await;
    let compute = site.clients().compute;
    let vm = &workload.servers[0];
    compute.delete_server(&vm.id).await.unwrap();
    compute
        .wait_for_deleted(&vm.id, &poll_policy())
        .await
        .unwrap();
    let info = world.site(SimSite::A);
    let created = compute
        .create_server(&ServerCreate {
            name: "reborn".to_owned(),
            flavor_id: info.flavors.values().next().unwrap().clone(),
            block_devices: vec![BlockDevice {
                volume_id: vm.boot_volume.id.clone(),
                boot_index: Some(0),
                delete_on_termination: false,
            }],
            networks: Vec::new(),
            key_name: None,
            security_groups: Vec::new(),
            metadata: Default::default(),
            availability_zone: None,
        })
        .await
        .unwrap();
    compute
        .wait_for_status(&created.id, ServerStatus::Active, &poll_policy())
        .await
        .unwrap();
    compute.stop_server(&created.id).await.unwrap();
    compute
        .wait_for_status(&created.id, ServerStatus::Shutoff, &poll_policy())
        .await
        .unwrap();
    compute.stop_server(&created.id).await.unwrap();
    compute.start_server(&created.id).await.unwrap();
    compute
        .wait_for_status(&created.id, ServerStatus::Active, &poll_policy())
        .await
        .unwrap();
    compute.delete_server(&created.id).await.unwrap();
    compute
        .wait_for_deleted(&created.id, &poll_policy())
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downed_site_refuses_connections_and_answers_again_when_back_up() {
    let (server, _dir) = serve(9).await;
    let world = server.world().clone();
    let site = connect(&server, "site-a").await;
    let cinder = site.clients().block_storage;
    cinder.list_volumes().await.unwrap();
    world.take_site_down(SimSite::A);
    let err = cinder.list_volumes().await.unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Transient, "{err}");
    assert_eq!(err.status, None, "no HTTP answer while down: {err}");
    let raw = reqwest::Client::new()
        .get(format!(
            "{}/v3",
            server.auth_url(SimSite::A).trim_end_matches("/v3")
        ))
        .send()
        .await;
    assert!(raw.is_err(), "keystone of a downed site must not answer");
    let other = connect(&server, "site-b").await;
    other.clients().block_storage.list_volumes().await.unwrap();
    world.bring_site_up(SimSite::A);
    cinder.list_volumes().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_every_listener() {
    let (server, _dir) = serve(10).await;
    let url = server.auth_url(SimSite::B).to_owned();
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    server.stop().await;
    assert!(client.get(&url).send().await.is_err());
}

fn array_client(server: &SimServer, site: SimSite, token: &str) -> FlashArrayClient {
    FlashArrayClient::builder(server.array_url(site), SecretString::from(token.to_owned()))
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_array_client_logs_in_and_reads_what_the_in_process_array_holds() {
    let (server, _dir) = serve(11).await;
    let world = server.world().clone();
    world
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(2))
        .unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(server.arrays_json_path()).unwrap()).unwrap();
    assert_eq!(written["array-a"]["url"], server.array_url(SimSite::A));
    let client = array_client(&server, SimSite::A, server.array_token(SimSite::A));
    let info = client.array_info().await.unwrap();
    assert_eq!(info.name, "array-a");
    let over_http = client.list_volumes(&VolumeQuery::default()).await.unwrap();
    let in_process = world
        .array(SimSite::A)
        .list_volumes(&VolumeQuery::default())
        .await
        .unwrap();
    assert_eq!(over_http, in_process);
    assert_eq!(over_http.len(), 4);
    let connections = client.list_array_connections().await.unwrap();
    assert!(connections.iter().any(|c| c.name == "array-b"));
    let missing = client.eradicate_volume("no-such-volume").await.unwrap_err();
    assert_eq!(missing.kind, BackendErrorKind::NotFound, "{missing}");
    assert_eq!(missing.status, Some(400));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_array_token_is_refused_at_login() {
    let (server, _dir) = serve(12).await;
    let err = array_client(&server, SimSite::B, "not-the-token")
        .list_pods(&[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, BackendErrorKind::Auth, "{err}");
    let resp = reqwest::Client::new()
        .get(format!("{}/api/2.36/volumes", server.array_url(SimSite::B)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["errors"][0]["message"].is_string());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_groups_and_their_snapshots_are_driven_over_rest() {
    let (server, _dir) = serve(13).await;
    let world = server.world().clone();
    let workload = world
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(1))
        .unwrap();
    let client = array_client(&server, SimSite::A, server.array_token(SimSite::A));
    let vm = &workload.servers[0];
    let members = vec![
        vm.boot_volume.array_volume.clone(),
        vm.data_volumes[0].array_volume.clone(),
    ];
    let pg = client.create_protection_group("dr-pg-1").await.unwrap();
    assert_eq!(pg.name, "dr-pg-1");
    client
        .add_protection_group_volumes("dr-pg-1", &members)
        .await
        .unwrap();
    let mut listed = client
        .list_protection_group_volumes("dr-pg-1")
        .await
        .unwrap();
    listed.sort();
    let mut expected = members.clone();
    expected.sort();
    assert_eq!(listed, expected);
    client
        .add_protection_group_targets("dr-pg-1", &["array-b".to_owned()])
        .await
        .unwrap();
    let targets = client
        .list_protection_group_targets("dr-pg-1")
        .await
        .unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].member.name, "array-b");
    let snap = client
        .create_pg_snapshot(
            "dr-pg-1",
            &PgSnapshotOptions {
                suffix: Some("tf-1".to_owned()),
                replicate_now: false,
                apply_retention: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(snap.name, "dr-pg-1.tf-1");
    let query = PgSnapshotQuery {
        source_names: vec!["dr-pg-1".to_owned()],
        ..Default::default()
    };
    let over_http = client.list_pg_snapshots(&query).await.unwrap();
    let in_process = world
        .array(SimSite::A)
        .list_pg_snapshots(&query)
        .await
        .unwrap();
    assert_eq!(over_http, in_process);
    assert!(over_http.iter().any(|s| s.name == snap.name));
    client.destroy_pg_snapshot(&snap.name).await.unwrap();
    client.eradicate_pg_snapshot(&snap.name).await.unwrap();
    assert!(client
        .list_pg_snapshots(&query)
        .await
        .unwrap()
        .iter()
        .all(|s| s.name != snap.name));
    let duplicate = client.create_protection_group("dr-pg-1").await.unwrap_err();
    assert_eq!(duplicate.kind, BackendErrorKind::Conflict, "{duplicate}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_volume_snapshots_are_listed_sorted_and_limited_over_rest() {
    let (server, _dir) = serve(14).await;
    let world = server.world().clone();
    let workload = world
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(1))
        .unwrap();
    let client = array_client(&server, SimSite::A, server.array_token(SimSite::A));
    let volume = workload.servers[0].boot_volume.array_volume.clone();
    client.create_protection_group("dr-pg-2").await.unwrap();
    client
        .add_protection_group_volumes("dr-pg-2", std::slice::from_ref(&volume))
        .await
        .unwrap();
    for suffix in ["s1", "s2", "s3"] {
        let options = PgSnapshotOptions {
            suffix: Some(suffix.to_owned()),
            replicate_now: false,
            apply_retention: false,
        };
        client
            .create_pg_snapshot("dr-pg-2", &options)
            .await
            .unwrap();
    }
    let newest = VolumeSnapshotQuery {
        source_names: vec![volume.clone()],
        destroyed: Some(false),
        order: SnapshotOrder::NewestFirst,
        limit: Some(2),
        ..VolumeSnapshotQuery::default()
    };
    let over_http = client.list_volume_snapshots(&newest).await.unwrap();
    let in_process = world
        .array(SimSite::A)
        .list_volume_snapshots(&newest)
        .await
        .unwrap();
    assert_eq!(over_http, in_process);
    let names: Vec<&str> = over_http.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("dr-pg-2.s3.{volume}"),
            format!("dr-pg-2.s2.{volume}")
        ]
    );
    let every = VolumeSnapshotQuery {
        order: SnapshotOrder::Name,
        limit: None,
        ..newest
    };
    let all = client.list_volume_snapshots(&every).await.unwrap();
    let suffixes: Vec<&str> = all.iter().map(|s| s.suffix.as_str()).collect();
    assert_eq!(suffixes, ["s1", "s2", "s3"]);

    // On the wire: a sorted page says more remain but gives no token; an unknown sort
    // is refused.
    let http = reqwest::Client::new();
    let base = server.array_url(SimSite::A);
    let login = http
        .post(format!("{base}/api/2.36/login"))
        .header("api-token", server.array_token(SimSite::A))
        .send()
        .await
        .unwrap();
    let session = login.headers()["x-auth-token"].to_str().unwrap().to_owned();
    let page: Value = http
        .get(format!("{base}/api/2.36/volume-snapshots"))
        .query(&[
            ("source_names", volume.as_str()),
            ("sort", "created-,name-"),
            ("limit", "1"),
        ])
        .header("x-auth-token", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["continuation_token"], Value::Null);
    assert_eq!(page["more_items_remaining"], json!(true));
    let refused = http
        .get(format!("{base}/api/2.36/volume-snapshots"))
        .query(&[("sort", "provisioned")])
        .header("x-auth-token", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cinder_pages_with_volumes_links_echoes_its_microversion_and_refuses_an_unknown_one() {
    let (server, _dir) = serve(14).await;
    server
        .world()
        .create_workload(&WorkloadSpec::new(SimSite::A, "tenant-a").servers(2))
        .unwrap();
    let token = fresh_token(&server, "alice", "tenant-a").await;
    let project = server
        .world()
        .site(SimSite::A)
        .project_id("tenant-a")
        .unwrap();
    let base = format!(
        "{}/v3/{project}/volumes/detail",
        server.endpoints(SimSite::A).block_storage
    );
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("{base}?limit=3"))
        .header("x-auth-token", &token)
        .header("openstack-api-version", "volume 3.21")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["openstack-api-version"], "volume 3.21");
    assert!(resp.headers()["x-openstack-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req-"));
    let page: Value = resp.json().await.unwrap();
    let volumes = page["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 3);
    assert_eq!(
        volumes[0]["bootable"]
            .as_str()
            .map(|b| b == "true" || b == "false"),
        Some(true)
    );
    let next = page["volumes_links"][0]["href"].as_str().unwrap();
    assert!(next.contains(&format!("marker={}", volumes[2]["id"].as_str().unwrap())));
    let rest: Value = client
        .get(next)
        .header("x-auth-token", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["volumes"].as_array().unwrap().len(), 1);
    assert!(rest.get("volumes_links").is_none());
    let refused = client
        .get(&base)
        .header("x-auth-token", &token)
        .header("openstack-api-version", "volume 3.99")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
    let body: Value = refused.json().await.unwrap();
    assert!(body["computeFault"]["message"]
        .as_str()
        .unwrap()
        .contains("3.99 is not supported"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cinder_creates_an_empty_volume_on_the_array_and_deletes_it() {
    let (server, _dir) = serve(15).await;
    let world = server.world().clone();
    let token = fresh_token(&server, "alice", "tenant-a").await;
    let project = world.site(SimSite::A).project_id("tenant-a").unwrap();
    let url = format!(
        "{}/v3/{project}/volumes",
        server.endpoints(SimSite::A).block_storage
    );
    let client = reqwest::Client::new();
    let create = |body: Value| {
        client
            .post(&url)
            .header("x-auth-token", &token)
            .header("openstack-api-version", "volume 3.71")
            .json(&body)
            .send()
    };
    let resp = create(json!({"volume": {"size": 2, "name": "made-here",
        "volume_type": TYPE_ASYNC, "metadata": {"purpose": "test"}}}))
    .await
    .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers()["openstack-api-version"], "volume 3.71");
    let body: Value = resp.json().await.unwrap();
    let created = &body["volume"];
    assert_eq!(created["status"], "creating");
    assert_eq!(created["size"], 2);
    assert_eq!(created["name"], "made-here");
    assert_eq!(created["volume_type"], TYPE_ASYNC);
    assert_eq!(created["bootable"], "false");
    assert_eq!(created["metadata"]["purpose"], "test");
    assert!(
        created.get("os-vol-host-attr:host").is_none(),
        "a tenant sees no host"
    );
    let id = protector_core::ids::VolumeId::from(created["id"].as_str().unwrap().to_owned());

    let site = connect(&server, "site-a").await;
    let cinder = site.clients().block_storage;
    let ready = cinder
        .wait_for_available(&id, &poll_policy())
        .await
        .unwrap();
    assert_eq!(ready.size_gb, 2);
    assert_eq!(ready.volume_type.as_deref(), Some(TYPE_ASYNC));
    let array_volume = format!("volume-{id}-cinder");
    assert_eq!(ready.array_volume_name(), Some(array_volume.as_str()));
    let on_array = world
        .array(SimSite::A)
        .list_volumes(&VolumeQuery {
            names: vec![array_volume.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(on_array.len(), 1);
    assert_eq!(on_array[0].provisioned, 2 << 30);
    assert!(!on_array[0].destroyed);

    cinder.delete_volume(&id).await.unwrap();
    cinder.wait_for_deleted(&id, &poll_policy()).await.unwrap();
    let destroyed = world
        .array(SimSite::A)
        .list_volumes(&VolumeQuery {
            names: vec![array_volume],
            destroyed: Some(true),
            pod: None,
        })
        .await
        .unwrap();
    assert_eq!(
        destroyed.len(),
        1,
        "deleting the volume destroys its array volume"
    );

    let unknown_type = create(json!({"volume": {"size": 1, "volume_type": "gold"}}))
        .await
        .unwrap();
    assert_eq!(unknown_type.status(), 404);
    let body: Value = unknown_type.json().await.unwrap();
    assert_eq!(body["itemNotFound"]["code"], 404);
    let no_size = create(json!({"volume": {"name": "sizeless"}}))
        .await
        .unwrap();
    assert_eq!(no_size.status(), 400);
    let body: Value = no_size.json().await.unwrap();
    assert!(body["badRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("size"));
    let from_snapshot = create(json!({"volume": {"size": 1, "snapshot_id": "s-1"}}))
        .await
        .unwrap();
    assert_eq!(from_snapshot.status(), 400);
    let refused = reqwest::Client::new()
        .post(&url)
        .json(&json!({"volume": {"size": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "no token, no volume");
    assert!(cinder
        .list_volumes()
        .await
        .unwrap()
        .iter()
        .all(|v| v.name != "sizeless" && v.size_gb != 1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cinder_answers_its_version_list_at_v3_for_discovery() {
    let (server, _dir) = serve(16).await;
    let base = &server.endpoints(SimSite::A).block_storage;
    let client = reqwest::Client::new();
    for (path, status) in [("/", 300), ("/v3", 200), ("/v3/", 200)] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let body: Value = resp.json().await.unwrap();
        let v = &body["versions"][0];
        assert_eq!(v["id"], "v3.0", "{path}");
        assert_eq!(v["min_version"], "3.0");
        assert!(v["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "self" && l["href"] == format!("{base}/v3/")));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_array_tls_the_arrays_answer_https_under_the_written_ca_only() {
    let world = SimWorld::builder()
        .seed(17)
        .profile(LatencyProfile::zero())
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = SimServer::start_with(world, dir.path(), ServeOptions::default().array_tls(true))
        .await
        .unwrap();
    let url = server.array_url(SimSite::B).to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca_path = server.array_ca_path().unwrap().to_owned();
    let ca = std::fs::read(&ca_path).unwrap();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(server.arrays_json_path()).unwrap()).unwrap();
    assert_eq!(written["array-b"]["url"], url);
    assert_eq!(written["array-b"]["ca_file"], ca_path.display().to_string());

    let client = FlashArrayClient::builder(
        &url,
        SecretString::from(server.array_token(SimSite::B).to_owned()),
    )
    .add_root_certificate_pem(ca.clone())
    .request_timeout(Duration::from_secs(10))
    .build()
    .unwrap();
    assert_eq!(client.array_info().await.unwrap().name, "array-b");
    let localhost = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let by_name = url.replace("127.0.0.1", "localhost");
    assert_eq!(
        localhost
            .get(format!("{by_name}/api/api_version"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the certificate names localhost too"
    );
    let untrusting = reqwest::Client::new();
    assert!(
        untrusting
            .get(format!("{url}/api/api_version"))
            .send()
            .await
            .is_err(),
        "a client without the CA refuses the certificate"
    );
    let plain = url.replace("https://", "http://");
    assert!(
        untrusting
            .get(format!("{plain}/api/api_version"))
            .send()
            .await
            .is_err(),
        "no plain HTTP on a TLS array"
    );
    assert!(
        server.array_url(SimSite::A).starts_with("https://"),
        "both arrays"
    );
    server.stop().await;
    assert!(localhost
        .get(format!("{url}/api/api_version"))
        .send()
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_options_the_arrays_answer_plain_http_and_name_no_ca() {
    let (server, _dir) = serve(18).await;
    assert!(server.array_url(SimSite::A).starts_with("http://"));
    assert!(server.array_ca_path().is_none());
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(server.arrays_json_path()).unwrap()).unwrap();
    assert!(written["array-a"]["ca_file"].is_null());
    server.stop().await;
}

/// `GET /types/{id}/extra_specs`: an admin sees every spec, a member only the ones Cinder
/// shows every user (Xena on), as in the type's own view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_specs_of_a_type_are_filtered_for_members_as_cinder_does() {
    let (server, _dir) = serve(15).await;
    let world = server.world();
    let project = world.site(SimSite::A).project_id("tenant-a").unwrap();
    let admin = world.admin_context(SimSite::A).unwrap();
    let types = world
        .block_storage(SimSite::A, &admin)
        .list_volume_types()
        .await
        .unwrap();
    let t = types.iter().find(|t| t.name == TYPE_ASYNC).unwrap();
    assert!(
        t.extra_specs.keys().any(|k| k == "volume_backend_name"),
        "{:?}",
        t.extra_specs
    );
    let url = format!(
        "{}/v3/{project}/types/{}/extra_specs",
        server.endpoints(SimSite::A).block_storage,
        t.id
    );
    let member = fresh_token(&server, "alice", "tenant-a").await;
    let resp = reqwest::Client::new()
        .get(&url)
        .header("x-auth-token", &member)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let specs = body["extra_specs"].as_object().unwrap();
    assert_eq!(
        specs.get("replication_enabled").and_then(|v| v.as_str()),
        Some("<is> True")
    );
    assert!(!specs.contains_key("volume_backend_name"), "{specs:?}");
    assert!(!specs.contains_key("replication_type"), "{specs:?}");
    server.stop().await;
}
