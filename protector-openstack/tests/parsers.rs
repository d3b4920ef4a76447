//! Every response parser of `protector_openstack::parse` returns `Ok` or `Err` on any
//! input (the property the fuzz targets check at scale), and reads every fixture.

use proptest::prelude::*;
use protector_openstack::parse;

use crate::common::fixture;

fn feed_all(bytes: &[u8]) {
    let _ = parse::keystone_token(bytes);
    let _ = parse::nova_server(bytes);
    let _ = parse::nova_server_page(bytes);
    let _ = parse::nova_created_server_id(bytes);
    let _ = parse::nova_flavor_page(bytes);
    let _ = parse::nova_interfaces(bytes);
    let _ = parse::cinder_volume(bytes);
    let _ = parse::cinder_volume_page(bytes);
    let _ = parse::cinder_volume_type_page(bytes);
    let _ = parse::cinder_volume_services(bytes);
    let _ = parse::cinder_group(bytes);
    let _ = parse::neutron_network(bytes);
    let _ = parse::neutron_network_page(bytes);
    let _ = parse::error_message(bytes);
}

/// JSON values of any shape, a few levels deep, with the keys the parsers look for.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("name".to_owned()),
        Just("status".to_owned()),
        Just("server".to_owned()),
        Just("volume".to_owned()),
        Just("token".to_owned()),
        Just("expires_at".to_owned()),
        Just("addresses".to_owned()),
        Just("servers_links".to_owned()),
        Just("href".to_owned()),
        Just("bootable".to_owned()),
        Just("size".to_owned()),
        "[a-z_:-]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        ".{0,20}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        feed_all(&bytes);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_json(value in json_value()) {
        feed_all(value.to_string().as_bytes());
        for wrapper in ["server", "servers", "volume", "volumes", "token", "network", "networks", "group"] {
            feed_all(serde_json::json!({ wrapper: value.clone() }).to_string().as_bytes());
        }
    }

    #[test]
    fn truncated_fixtures_never_panic(cut in 0usize..4096) {
        for rel in ["nova/server_get.json", "cinder/volume_get.json", "keystone/token_password.json"] {
            let text = fixture(rel);
            let end = cut.min(text.len());
            feed_all(&text.as_bytes()[..end]);
        }
    }
}

#[test]
fn every_fixture_parses_with_its_parser() {
    assert!(parse::nova_server(fixture("nova/server_get.json").as_bytes()).is_ok());
    assert!(parse::nova_server(fixture("nova/server_error.json").as_bytes()).is_ok());
    assert!(parse::nova_interfaces(fixture("nova/os_interface.json").as_bytes()).is_ok());
    assert!(parse::nova_created_server_id(fixture("nova/create_server.json").as_bytes()).is_ok());
    assert!(parse::nova_flavor_page(fixture("nova/flavors_detail.json").as_bytes()).is_ok());
    assert!(parse::cinder_volume(fixture("cinder/volume_get.json").as_bytes()).is_ok());
    assert!(parse::cinder_volume(fixture("cinder/manage_response.json").as_bytes()).is_ok());
    assert!(parse::cinder_volume_type_page(fixture("cinder/types.json").as_bytes()).is_ok());
    assert!(parse::cinder_volume_services(fixture("cinder/services.json").as_bytes()).is_ok());
    assert!(parse::cinder_group(fixture("cinder/group_get.json").as_bytes()).is_ok());
    assert!(parse::neutron_network(fixture("neutron/network_get.json").as_bytes()).is_ok());
    let token = fixture("keystone/token_password.json")
        .replace("{{BASE}}", "http://k")
        .replace("{{EXPIRES_AT}}", "2030-01-01T00:00:00.000000Z");
    assert!(parse::keystone_token(token.as_bytes()).is_ok());
    for rel in [
        "nova/error_item_not_found.json",
        "cinder/error_quota.json",
        "neutron/error_network_not_found.json",
        "keystone/error_unauthorized.json",
    ] {
        assert!(
            parse::error_message(fixture(rel).as_bytes()).is_some(),
            "{rel}"
        );
    }
}
