//! Layout snapshots of the renderers: plain string comparisons.

use protector_cli::render::{Format, View};
use serde_json::json;

fn seed_failover_started() -> View {
    View::record(vec![
        ("operation_id", json!("op-3fa85f64-5717-4562-b3fc-2c963f66")),
        ("operation_type", json!("failover")),
        ("status", json!("running")),
        ("progress", json!(10)),
        ("source_site", json!("site-a")),
        ("target_site", json!("site-b")),
        ("started_at", json!("2025-03-15T09:00:12Z")),
    ])
}

#[test]
fn failover_started_table_has_the_seed_layout() {
    let text = seed_failover_started().render(Format::Table, &[]).unwrap();
    let expected = "\
+----------------+-------------------------------------+
| Field          | Value                               |
+----------------+-------------------------------------+
| operation_id   | op-3fa85f64-5717-4562-b3fc-2c963f66 |
| operation_type | failover                            |
| status         | running                             |
| progress       | 10                                  |
| source_site    | site-a                              |
| target_site    | site-b                              |
| started_at     | 2025-03-15T09:00:12Z                |
+----------------+-------------------------------------+
";
    assert_eq!(text, expected);
}

#[test]
fn note_follows_the_table() {
    let text = View::record(vec![("status", json!("running"))])
        .with_note("WARNING: line one\nline two")
        .render(Format::Table, &[])
        .unwrap();
    let expected = "\
+--------+---------+
| Field  | Value   |
+--------+---------+
| status | running |
+--------+---------+
WARNING: line one
line two
";
    assert_eq!(text, expected);
}

#[test]
fn long_json_values_wrap_across_rows_like_the_seed() {
    let text = View::record(vec![
        ("error_message", json!("None")),
        (
            "steps_completed",
            json!([
                "prepare",
                "storage_failover",
                "instance_recreation",
                "finalization"
            ]),
        ),
        ("steps_failed", json!([])),
    ])
    .render(Format::Table, &[])
    .unwrap();
    let expected = "\
+-----------------+----------------------------------------+
| Field           | Value                                  |
+-----------------+----------------------------------------+
| error_message   | None                                   |
| steps_completed | [\"prepare\", \"storage_failover\",        |
|                 | \"instance_recreation\", \"finalization\"] |
| steps_failed    | []                                     |
+-----------------+----------------------------------------+
";
    assert_eq!(text, expected);
}

fn seed_operation_list() -> View {
    View::List {
        keys: [
            "id",
            "protection_group",
            "operation_type",
            "status",
            "progress",
            "started_at",
        ]
        .map(String::from)
        .to_vec(),
        headers: [
            "ID",
            "PROTECTION_GROUP",
            "TYPE",
            "STATUS",
            "PROGRESS",
            "STARTED_AT",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![
            vec![
                json!("op-a1b2c3d4"),
                json!("prod-web-app"),
                json!("failover"),
                json!("completed"),
                json!(100),
                json!("2025-03-12T09:14:02Z"),
            ],
            vec![
                json!("op-e5f6a7b8"),
                json!("prod-web-app"),
                json!("test_failover"),
                json!("completed"),
                json!(100),
                json!("2025-03-10T14:30:00Z"),
            ],
        ],
    }
}

#[test]
fn operation_list_has_the_seed_columns() {
    let text = seed_operation_list().render(Format::Table, &[]).unwrap();
    let expected = "\
+-------------+------------------+---------------+-----------+----------+----------------------+
| ID          | PROTECTION_GROUP | TYPE          | STATUS    | PROGRESS | STARTED_AT           |
+-------------+------------------+---------------+-----------+----------+----------------------+
| op-a1b2c3d4 | prod-web-app     | failover      | completed | 100      | 2025-03-12T09:14:02Z |
| op-e5f6a7b8 | prod-web-app     | test_failover | completed | 100      | 2025-03-10T14:30:00Z |
+-------------+------------------+---------------+-----------+----------+----------------------+
";
    assert_eq!(text, expected);
}

#[test]
fn value_format_prints_bare_values() {
    let text = seed_operation_list()
        .render(Format::Value, &["id".into(), "STATUS".into()])
        .unwrap();
    assert_eq!(text, "op-a1b2c3d4 completed\nop-e5f6a7b8 completed\n");
    let one = seed_failover_started()
        .render(Format::Value, &["status".into()])
        .unwrap();
    assert_eq!(one, "running\n");
}

#[test]
fn json_and_yaml_keep_field_names_and_types() {
    let text = seed_failover_started()
        .render(Format::Json, &["operation_id".into(), "progress".into()])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"operation_id": "op-3fa85f64-5717-4562-b3fc-2c963f66", "progress": 10})
    );
    let list: serde_json::Value =
        serde_json::from_str(&seed_operation_list().render(Format::Json, &[]).unwrap()).unwrap();
    assert_eq!(list[1]["operation_type"], "test_failover");
    let yaml = seed_failover_started()
        .render(Format::Yaml, &["status".into()])
        .unwrap();
    assert_eq!(yaml, "status: running\n");
}

#[test]
fn unknown_column_is_an_error_naming_it() {
    let e = seed_failover_started()
        .render(Format::Table, &["nope".into()])
        .unwrap_err();
    assert_eq!(e, "no such column: nope");
}
