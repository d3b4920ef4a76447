//! `clouds.yaml`: any bytes load or are refused with an error naming the file, never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protector_openstack::ConfigLoader;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::write(dir.path().join("clouds.yaml"), data).is_err() {
        return;
    }
    let loader = ConfigLoader::new(Vec::<(String, String)>::new()).with_search_dirs([dir.path().to_path_buf()]);
    for cloud in [None, Some("site-a")] {
        let _ = loader.load(cloud);
    }
});
