//! The real `protector` binary: the demo and bad input.

use std::process::{Command, Output};

fn protector(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_protector"))
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(home.path())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic in stderr: {err}");
    assert!(!err.contains("RUST_BACKTRACE"), "backtrace hint: {err}");
    assert!(!err.contains("stack backtrace"), "backtrace: {err}");
    assert!(o.stdout.is_empty(), "nothing on stdout on error");
    err
}

#[test]
fn demo_walks_through_every_operation_and_exits_zero() {
    let o = protector(&["demo"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "demo failed: {}", stderr(&o));
    for needle in [
        "$ protector protection-group failover prod-web-app --type planned --network-mapping",
        "$ protector protection-group failback prod-web-app --type planned --reverse-replication",
        "| operation_id   |",
        "| source_site    | site-a ",
        "| ID ",
        "| PROTECTION_GROUP | TYPE ",
        "| steps_completed     |",
        "| status              | completed ",
        "WARNING: Unplanned failover initiated. Source site (site-a) is unreachable.",
        "Run 'protector protection-group sync-force prod-web-app' after site-a is restored.",
        "Sync Status: UNREACHABLE",
        "Sync Status: IN SYNC",
        "| current_primary_site | site-b ",
        "--primary-fa-token ****",
    ] {
        assert!(out.contains(needle), "demo output lacks {needle:?}");
    }
    assert!(
        !out.contains("| status              | failed"),
        "an operation failed:\n{out}"
    );
}

#[test]
fn demo_never_prints_the_array_tokens() {
    let o = protector(&["demo", "--profile", "zero", "--servers", "1"]);
    assert!(o.status.success(), "demo failed: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("| primary_fa_api_token"));
    // The masked value, never a token.
    for line in out.lines().filter(|l| l.contains("fa_api_token")) {
        assert!(line.contains("******"), "unmasked: {line}");
    }
}

#[test]
fn missing_clouds_yaml_is_a_one_line_error() {
    let o = protector(&[
        "--os-cloud",
        "site-a",
        "--secondary-cloud",
        "site-b",
        "protection-group",
        "show",
        "prod-web-app",
    ]);
    let err = assert_clean_failure(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("site-a"), "{err}");
    assert!(err.contains("clouds.yaml"), "{err}");
}

#[test]
fn no_cloud_selected_is_a_one_line_error() {
    let o = protector(&["operation", "list"]);
    let err = assert_clean_failure(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--os-cloud"), "{err}");
}

#[test]
fn missing_secondary_cloud_is_a_one_line_error() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("clouds.yaml"),
        "clouds:\n  site-a:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: u\n      password: p\n      project_name: p\n      user_domain_name: Default\n      project_domain_name: Default\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_protector"))
        .args(["--os-cloud", "site-a", "operation", "list"])
        .env_clear()
        .env("HOME", home.path())
        .current_dir(home.path())
        .output()
        .unwrap();
    let err = assert_clean_failure(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--secondary-cloud"), "{err}");
    assert!(!err.contains("password"), "{err}");
}

#[test]
fn malformed_mapping_is_a_usage_error_naming_it() {
    let o = protector(&[
        "protection-group",
        "failover",
        "prod-web-app",
        "--network-mapping",
        "a=b=c",
    ]);
    let err = assert_clean_failure(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("'a=b=c'"), "{err}");
    assert!(err.contains("--network-mapping"), "{err}");
}

#[test]
fn unknown_subcommand_and_bad_type_are_clap_usage_errors() {
    for args in [
        &["frobnicate"][..],
        &["protection-group", "failover", "pg", "--type", "sideways"][..],
        &["operation", "show"][..],
    ] {
        let o = protector(args);
        let err = assert_clean_failure(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("Usage") || err.contains("invalid value"),
            "{err}"
        );
    }
}
