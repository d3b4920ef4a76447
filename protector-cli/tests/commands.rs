//! Every command against the simulator, through the same `Backend` trait the real
//! clouds use.

use std::time::Duration;

use clap::Parser;
use protector_cli::backend::SimBackend;
use protector_cli::cli::{Cli, ProfileArg};
use protector_cli::commands::{execute, Outcome, Printer};
use protector_cli::demo::sim_backend;

const PG: &str = "prod-web-app";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Runs `protector --os-cloud <local> --secondary-cloud <peer> <args>` in-process.
async fn run(b: &SimBackend, local: &str, args: &str) -> (Result<Outcome, String>, String) {
    let peer = if local.starts_with("site-a") {
        local.replace("site-a", "site-b")
    } else {
        local.replace("site-b", "site-a")
    };
    let mut argv = vec![
        "protector".to_owned(),
        "--os-cloud".to_owned(),
        local.to_owned(),
        "--secondary-cloud".to_owned(),
        peer,
    ];
    argv.extend(args.split_whitespace().map(str::to_owned));
    let cli = Cli::try_parse_from(&argv).unwrap();
    let mut buf: Vec<u8> = Vec::new();
    let r = {
        let mut p = Printer {
            out: &mut buf,
            global: &cli.global,
            progress: false,
        };
        execute(b, cli.command, &mut p).await
    };
    (r, String::from_utf8(buf).unwrap())
}

async fn ok(b: &SimBackend, local: &str, args: &str) -> String {
    let (r, out) = run(b, local, args).await;
    assert_eq!(r, Ok(Outcome::Success), "{args}: {out}");
    out
}

async fn refused(b: &SimBackend, local: &str, args: &str) -> String {
    let (r, out) = run(b, local, args).await;
    let e = r.expect_err(args);
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    assert!(out.is_empty(), "nothing printed on error: {out}");
    e
}

fn mappings(b: &SimBackend, from: &str, to: &str) -> String {
    let (f, t) = (b.site(from).unwrap().0, b.site(to).unwrap().0);
    ["tenant-a-web", "tenant-a-db"]
        .iter()
        .map(|n| {
            format!(
                "--network-mapping {}={}",
                b.world.site(f).network_id(n).unwrap(),
                b.world.site(t).network_id(n).unwrap()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A protected group of two servers with a policy, replication caught up.
async fn protected() -> SimBackend {
    let b = sim_backend(7, ProfileArg::Zero, 2).unwrap();
    ok(&b, "site-a", &format!("protection-group create {PG}")).await;
    let (a, bb) = (
        b.world.site(protector_sim::SimSite::A).clone(),
        b.world.site(protector_sim::SimSite::B).clone(),
    );
    let out = ok(
        &b,
        "site-a",
        &format!(
            "protection-group policy-create {PG} --primary-fa-url {} --primary-fa-token {} --secondary-fa-url {} --secondary-fa-token {} --rpo-minutes 15 --replication-interval 300",
            a.array_url, a.array_token, bb.array_url, bb.array_token
        ),
    )
    .await;
    assert!(!out.contains(&a.array_token) && !out.contains(&bb.array_token));
    for s in ["web-server-1", "web-server-2"] {
        ok(
            &b,
            "site-a",
            &format!("protection-group member-add {PG} {s}"),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(420)).await;
    b
}

fn field<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    out.lines()
        .find(|l| l.starts_with(&format!("| {name} ")))
        .and_then(|l| l.split('|').nth(2))
        .map(str::trim)
}

#[test]
fn sites_register_list_show_and_validate() {
    runtime().block_on(async {
        let b = sim_backend(1, ProfileArg::Zero, 1).unwrap();
        let e = refused(&b, "site-a", "site register site-a").await;
        assert!(e.contains("protector:sites:create"), "{e}");
        let out = ok(&b, "site-a-admin", "site register site-b --description dr").await;
        assert_eq!(field(&out, "description"), Some("dr"));
        let list = ok(&b, "site-a", "site list").await;
        assert!(list.contains("| ID ") && list.contains("site-a") && list.contains("site-b"));
        let show = ok(&b, "site-a", "site show site-b").await;
        assert_eq!(field(&show, "name"), Some("site-b"));
        let v = ok(&b, "site-a-admin", "site validate site-b").await;
        assert_eq!(field(&v, "result"), Some("valid"));
        let e = refused(&b, "site-c", "site list").await;
        assert!(e.contains("site-c"), "{e}");
    });
}

#[test]
fn protection_group_lifecycle_commands() {
    runtime().block_on(async {
        let b = protected().await;
        let show = ok(&b, "site-a", &format!("protection-group show {PG}")).await;
        for (k, v) in [
            ("status", "active"),
            ("primary_site", "site-a"),
            ("secondary_site", "site-b"),
            ("current_primary_site", "site-a"),
            ("failover_count", "0"),
            ("last_failover_at", ""),
        ] {
            assert_eq!(field(&show, k), Some(v), "{k} in\n{show}");
        }
        let list = ok(&b, "site-a", "protection-group list").await;
        assert!(list.contains("| NAME ") && list.contains(PG));
        let pol = ok(&b, "site-a", &format!("protection-group policy-show {PG}")).await;
        assert_eq!(field(&pol, "primary_fa_api_token"), Some("******"));
        ok(
            &b,
            "site-a",
            &format!("protection-group member-remove {PG} web-server-2"),
        )
        .await;
        let json = ok(&b, "site-a", &format!("protection-group show {PG} -f json")).await;
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["members"], serde_json::json!(["web-server-1"]));
        let status = ok(&b, "site-a", &format!("protection-group sync-status {PG}")).await;
        assert!(status.ends_with("Sync Status: IN SYNC\n"), "{status}");
        let cg = ok(&b, "site-a", &format!("consistency-group sync {PG}")).await;
        assert!(cg.contains("| operation_type | sync_volumes"), "{cg}");
        ok(&b, "site-a", "protection-group create scratch").await;
        ok(&b, "site-a", "protection-group delete scratch").await;
        let e = refused(&b, "site-a", "protection-group show scratch").await;
        assert!(e.contains("scratch"), "{e}");
    });
}

#[test]
fn planned_failover_prints_started_table_then_final_record() {
    runtime().block_on(async {
        let b = protected().await;
        let m = mappings(&b, "site-a", "site-b");
        let out = ok(
            &b,
            "site-a",
            &format!("protection-group failover {PG} --type planned {m}"),
        )
        .await;
        let started: Vec<&str> = out
            .lines()
            .skip(3)
            .take(7)
            .map(|l| l.split('|').nth(1).unwrap_or("").trim())
            .collect();
        assert_eq!(
            started,
            [
                "operation_id",
                "operation_type",
                "status",
                "progress",
                "source_site",
                "target_site",
                "started_at"
            ]
        );
        assert_eq!(field(&out, "source_site"), Some("site-a"));
        assert_eq!(field(&out, "target_site"), Some("site-b"));
        let progress: u8 = field(&out, "progress").unwrap().parse().unwrap();
        assert!(progress >= 10);
        assert!(out.contains("| status              | completed "), "{out}");
        assert!(!out.contains("WARNING"));
        let show = ok(&b, "site-b", &format!("protection-group show {PG}")).await;
        assert_eq!(field(&show, "status"), Some("failed_over"));
        assert_eq!(field(&show, "current_primary_site"), Some("site-b"));
        assert_eq!(field(&show, "failover_count"), Some("1"));

        // Listed newest first, filtered by name or id; shown by id.
        let list = ok(&b, "site-a", "operation list -f json").await;
        let ops: serde_json::Value = serde_json::from_str(&list).unwrap();
        assert_eq!(ops[0]["operation_type"], "failover");
        let id = ops[0]["id"].as_str().unwrap().to_owned();
        let by_name = ok(
            &b,
            "site-a",
            &format!("operation list --protection-group {PG} -c id -f value"),
        )
        .await;
        assert_eq!(by_name.lines().next(), Some(id.as_str()));
        let pg_id = ok(
            &b,
            "site-a",
            &format!("protection-group show {PG} -c id -f value"),
        )
        .await;
        let by_id = ok(
            &b,
            "site-a",
            &format!(
                "operation list --protection-group {} -f value -c id",
                pg_id.trim()
            ),
        )
        .await;
        assert_eq!(by_id, by_name);
        let none = ok(
            &b,
            "site-a",
            "operation list --protection-group other -f json",
        )
        .await;
        assert_eq!(none.trim(), "[]");
        let show = ok(&b, "site-a", &format!("operation show {id} --watch")).await;
        let fields: Vec<&str> = show
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("|  "))
            .map(|l| l.split('|').nth(1).unwrap_or("").trim())
            .collect();
        assert_eq!(
            fields,
            [
                "Field",
                "id",
                "protection_group_id",
                "operation_type",
                "status",
                "progress",
                "source_site_id",
                "target_site_id",
                "started_at",
                "completed_at",
                "error_message",
                "steps_completed",
                "steps_failed",
                "result_data"
            ]
        );
        assert_eq!(field(&show, "error_message"), Some("None"));

        // Failback with reverse replication from the site running the workload.
        let back = mappings(&b, "site-b", "site-a");
        let out = ok(
            &b,
            "site-b",
            &format!("protection-group failback {PG} --reverse-replication {back}"),
        )
        .await;
        assert_eq!(field(&out, "operation_type"), Some("failback"));
        assert_eq!(field(&out, "source_site"), Some("site-b"));
        let show = ok(&b, "site-a", &format!("protection-group show {PG}")).await;
        assert_eq!(field(&show, "status"), Some("active"));
    });
}

#[test]
fn unplanned_failover_prints_the_warning_after_the_table() {
    runtime().block_on(async {
        let b = protected().await;
        b.world.take_site_down(protector_sim::SimSite::A);
        let m = mappings(&b, "site-a", "site-b");
        let out = ok(
            &b,
            "site-b",
            &format!("protection-group failover {PG} --type unplanned {m}"),
        )
        .await;
        let table_end = out
            .find("+\nWARNING")
            .expect("warning right after the table");
        assert!(out[..table_end].contains("| started_at"));
        assert!(out.contains(
            "WARNING: Unplanned failover initiated. Source site (site-a) is unreachable.\n\
             Metadata sync to site-a will be deferred until it recovers.\n\
             Run 'protector protection-group sync-force prod-web-app' after site-a is restored.\n"
        ));
        let e = refused(
            &b,
            "site-b",
            &format!("protection-group member-remove {PG} web-server-1"),
        )
        .await;
        assert!(e.contains("remote site unreachable"), "{e}");
        b.world.bring_site_up(protector_sim::SimSite::A);
        let forced = ok(&b, "site-b", &format!("protection-group sync-force {PG}")).await;
        assert!(forced.contains("Sync Status: IN SYNC"));
    });
}

#[test]
fn test_failover_and_cleanup_complete() {
    runtime().block_on(async {
        let b = protected().await;
        let m = mappings(&b, "site-a", "site-b");
        let out = ok(
            &b,
            "site-a",
            &format!("protection-group test-failover {PG} {m}"),
        )
        .await;
        assert_eq!(field(&out, "operation_type"), Some("test_failover"));
        assert!(out.contains("| status              | completed "));
        let out = ok(&b, "site-a", &format!("protection-group test-cleanup {PG}")).await;
        assert_eq!(field(&out, "operation_type"), Some("test_cleanup"));
    });
}

#[test]
fn refusals_are_one_line_errors() {
    runtime().block_on(async {
        let b = protected().await;
        let e = refused(&b, "site-a", "protection-group show nope").await;
        assert!(e.contains("nope"), "{e}");
        let e = refused(&b, "site-a", &format!("protection-group failback {PG}")).await;
        assert!(
            e.contains("Protection Group is not in failed_over state"),
            "{e}"
        );
        let e = refused(
            &b,
            "site-a",
            &format!("protection-group failover {PG} --network-mapping a=b --network-mapping a=c"),
        )
        .await;
        assert!(e.contains("conflicting mappings for 'a'"), "{e}");
        let e = refused(
            &b,
            "site-a",
            "operation show 00000000-0000-0000-0000-000000000000",
        )
        .await;
        assert!(e.contains("could not be found"), "{e}");
        let e = refused(&b, "site-a", &format!("protection-group show {PG} -c nope")).await;
        assert_eq!(e, "no such column: nope");
    });
}

#[test]
fn failed_operation_prints_its_record_and_reports_failure() {
    runtime().block_on(async {
        let b = protected().await;
        b.world.deny_volume_manage(protector_sim::SimSite::B);
        let m = mappings(&b, "site-a", "site-b");
        let (r, out) = run(&b, "site-a", &format!("protection-group failover {PG} {m}")).await;
        assert_eq!(r, Ok(Outcome::Failed), "{out}");
        assert!(out.contains("| status              | failed "), "{out}");
        let err = field(&out, "error_message").unwrap_or("");
        assert!(!err.is_empty() && err != "None", "{out}");
        let show = ok(
            &b,
            "site-a",
            &format!("protection-group show {PG} -c status -f value"),
        )
        .await;
        assert_eq!(show, "error\n");
    });
}

#[test]
fn machine_formats_print_only_the_final_record() {
    runtime().block_on(async {
        let b = protected().await;
        let m = mappings(&b, "site-a", "site-b");
        let out = ok(
            &b,
            "site-a",
            &format!("protection-group failover {PG} -f json {m}"),
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["progress"], 100);
        assert_eq!(v["steps_failed"], serde_json::json!([]));
        let yaml = ok(
            &b,
            "site-a",
            "operation list -f yaml -c operation_type -c status",
        )
        .await;
        assert_eq!(yaml, "- operation_type: failover\n  status: completed\n");
    });
}
