//! Every FlashArray REST 2.x response parser: arbitrary bytes never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protector_purestorage::parse;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 12 {
        0 => drop(parse::api_versions(body)),
        1 => drop(parse::arrays(body)),
        2 => drop(parse::volumes(body)),
        3 => drop(parse::volume_snapshots(body)),
        4 => drop(parse::protection_groups(body)),
        5 => drop(parse::group_targets(body)),
        6 => drop(parse::group_members(body)),
        7 => drop(parse::pg_snapshots(body)),
        8 => drop(parse::pg_snapshot_transfers(body)),
        9 => drop(parse::pods(body)),
        10 => drop(parse::array_connections(body)),
        _ => drop(parse::login_user(body)),
    }
    let _ = parse::error_items(body);
});
