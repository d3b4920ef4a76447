//! Every Keystone, Nova, Cinder and Neutron response parser: arbitrary bytes never panic.
//!
//! The first byte picks the parser, the rest is the response body. Every body also goes
//! through the error-envelope parser. A Keystone token that parses has its catalog
//! resolved for every service, interface and region it names, as a session does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protector_openstack::{parse, Interface, ServiceType, Token};

fn exercise_token(token: &Token) {
    let _ = token.request_context();
    // The token's own instants stand in for the clock, so runs are reproducible.
    for now in [Some(token.expires_at), token.issued_at]
        .into_iter()
        .flatten()
    {
        for margin in [0, 300, u64::MAX] {
            let _ = token.needs_refresh(now, std::time::Duration::from_secs(margin));
        }
    }
    let mut regions: Vec<Option<&str>> = vec![None, Some("RegionOne")];
    regions.extend(
        token
            .catalog
            .services
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .take(8)
            .map(|e| e.region.as_deref()),
    );
    for service in [
        ServiceType::Identity,
        ServiceType::Compute,
        ServiceType::BlockStorage,
        ServiceType::Network,
    ] {
        for interface in [Interface::Public, Interface::Internal, Interface::Admin] {
            for region in &regions {
                let _ = token.catalog.endpoint(service, interface, *region);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 13 {
        0 => {
            if let Ok(token) = parse::keystone_token(body) {
                exercise_token(&token);
            }
        }
        1 => drop(parse::nova_server(body)),
        2 => drop(parse::nova_server_page(body)),
        3 => drop(parse::nova_flavor_page(body)),
        4 => drop(parse::nova_interfaces(body)),
        5 => drop(parse::nova_created_server_id(body)),
        6 => drop(parse::cinder_volume(body)),
        7 => drop(parse::cinder_volume_page(body)),
        8 => drop(parse::cinder_volume_type_page(body)),
        9 => drop(parse::cinder_volume_services(body)),
        10 => drop(parse::cinder_group(body)),
        11 => drop(parse::neutron_network(body)),
        _ => drop(parse::neutron_network_page(body)),
    }
    let _ = parse::error_message(body);
});
