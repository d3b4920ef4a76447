//! `clouds.yaml`: any bytes load or are refused with an error naming the file, never
//! panic.
//!
//! The input up to the first `0xFF` byte (which UTF-8 text never holds) is
//! `clouds.yaml`; what follows it, if anything, is `secure.yaml`, merged over it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protector_openstack::ConfigLoader;

fuzz_target!(|data: &[u8]| {
    let (clouds, secure) = match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("clouds.yaml"), clouds).is_err() {
        return;
    }
    if let Some(secure) = secure {
        if std::fs::write(dir.path().join("secure.yaml"), secure).is_err() {
            return;
        }
    }
    let loader = ConfigLoader::new(Vec::<(String, String)>::new())
        .with_search_dirs([dir.path().to_path_buf()]);
    for cloud in [None, Some("site-a")] {
        let _ = loader.load(cloud);
    }
});
