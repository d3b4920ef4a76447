//! `SRC=DST` mapping arguments: any text, one argument per line, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let args: Vec<&str> = text.lines().collect();
        let _ = protector_core::model::parse_mappings(&args);
        for a in &args {
            let _ = protector_core::model::parse_mapping(a);
        }
    }
});
