//! Every Keystone, Nova, Cinder and Neutron response parser: arbitrary bytes never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protector_openstack::parse;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 13 {
        0 => drop(parse::keystone_token(body)),
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
