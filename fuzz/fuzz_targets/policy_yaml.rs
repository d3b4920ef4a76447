//! `policy.yaml`: any text loads or is refused with an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protector_core::policy::{PolicyEngine, Target};
use protector_core::RequestContext;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(engine) = PolicyEngine::from_yaml_str(text, "policy.yaml") {
            let ctx = RequestContext::new("u", "p", &["member"]);
            for rule in engine.rule_names().map(str::to_owned).collect::<Vec<_>>() {
                let _ = engine.check(&rule, &ctx, &Target::new().with("project_id", "p"));
            }
        }
    }
});
