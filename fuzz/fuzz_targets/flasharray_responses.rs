//! Every FlashArray REST 2.x response parser: arbitrary bytes never panic.
//!
//! The first byte picks the parser, the rest is the response body. Every body is also
//! read as an error body (the items, and the error a failed call with a status chosen by
//! the first byte would give), and as the rate-limit header the throttle delay reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protector_purestorage::{parse, MAX_REST_MINOR, MIN_REST_MINOR};

/// Statuses a failed call can come back with, covering every branch of the mapping.
const STATUSES: [u16; 16] = [
    0, 200, 302, 400, 401, 403, 404, 408, 409, 422, 429, 499, 500, 502, 503, 599,
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 12 {
        0 => {
            if let Ok(offered) = parse::api_versions(body) {
                let _ = parse::pick_v2(&offered, MIN_REST_MINOR, MAX_REST_MINOR);
                let _ = parse::pick_v2(&offered, 0, u32::MAX);
            }
        }
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
    let text = String::from_utf8_lossy(body);
    let meta = parse::ErrorMeta {
        request_id: Some(text.chars().take(64).collect()),
        remaining_second: Some(text.to_string()),
        remaining_minute: Some(text.to_string()),
    };
    let status = STATUSES[usize::from(which >> 4)];
    let _ = parse::error_from_response(status, body, &meta);
    let _ = parse::throttle_delay(Some(&text));
});
