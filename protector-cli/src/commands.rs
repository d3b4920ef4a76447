//! Running a command against a [`Backend`] and printing what it returns.

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use protector_core::engine::{
    CreatePolicy, CreateProtectionGroup, FailbackRequest, FailoverRequest, SiteRegistration,
    TestFailoverRequest,
};
use protector_core::ids::{OperationId, SiteId};
use protector_core::messages::unplanned_failover_warning;
use protector_core::model::{
    parse_mappings, FailoverType, MaskedPolicy, Member, Operation, OperationFilter, PgRef,
    ProtectionGroup, ReplicationType, ResourceMappings, Site, SyncStatus,
};
use protector_core::secrecy::SecretString;
use protector_core::{Protector, RequestContext};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::backend::{Backend, Handle};
use crate::cli::{
    CgCmd, Command, FailoverTypeArg, Global, MappingArgs, OpCmd, PgCmd, ReplicationArg, SiteCmd,
};
use crate::render::{opt_timestamp, timestamp, View};

/// How often `operation show --watch` re-reads the record.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// What a finished command tells the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran, but what it followed ended badly (a failed operation, a
    /// failed validation).
    Failed,
}

/// Where a command writes: the output (tables) and whether a live progress bar may be
/// drawn (on a terminal only).
pub struct Printer<'a> {
    /// Standard output, or a buffer in tests.
    pub out: &'a mut dyn Write,
    /// Options of the command line.
    pub global: &'a Global,
    /// Draw progress bars (stdout is a terminal).
    pub progress: bool,
}

impl Printer<'_> {
    /// Renders and writes a view.
    ///
    /// # Errors
    /// Unknown column; write failure.
    pub fn show(&mut self, view: View) -> Result<(), String> {
        let text = view.render(self.global.format, &self.global.columns)?;
        self.write(&text)
    }

    /// Writes text as is.
    ///
    /// # Errors
    /// Write failure.
    pub fn write(&mut self, text: &str) -> Result<(), String> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| format!("cannot write output: {e}"))
    }
}

/// Runs one command (not `demo`).
///
/// # Errors
/// A one-line message.
pub async fn execute(
    backend: &dyn Backend,
    command: Command,
    p: &mut Printer<'_>,
) -> Result<Outcome, String> {
    match command {
        Command::Demo(_) => return Err("demo runs on its own".to_owned()),
        Command::Sim(_) => return Err("sim runs on its own".to_owned()),
        _ => {}
    }
    let g = p.global.clone();
    let monitoring = matches!(command, Command::Operation(_));
    let h = backend
        .open(
            g.os_cloud.as_deref(),
            g.secondary_cloud.as_deref(),
            !monitoring,
        )
        .await?;
    // Finish what an interrupted command left before starting anything new.
    for id in &h.recovered {
        let op = h.protector.wait(id).await.map_err(err)?;
        eprintln!(
            "protector: resumed interrupted operation {} ({}): {}",
            op.id, op.operation_type, op.status
        );
    }
    match command {
        Command::Site(c) => site(&h, c, p).await,
        Command::ProtectionGroup(c) => pg(&h, c, p).await,
        Command::ConsistencyGroup(CgCmd::Sync { pg }) => {
            let rx = h.protector.subscribe();
            let op = h.protector.sync_volumes(&h.ctx, &pg).await.map_err(err)?;
            follow(&h, rx, op, p, None).await
        }
        Command::Operation(c) => operation(&h, c, p).await,
        Command::Demo(_) | Command::Sim(_) => Err("runs on its own".to_owned()),
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn site(h: &Handle, c: SiteCmd, p: &mut Printer<'_>) -> Result<Outcome, String> {
    let (pr, ctx) = (&h.protector, &h.ctx);
    match c {
        SiteCmd::Register { name, description } => {
            let s = pr
                .register_site(ctx, &SiteRegistration { name, description })
                .await
                .map_err(err)?;
            p.show(site_view(&s))?;
        }
        SiteCmd::List => {
            let sites = pr.list_sites(ctx).await.map_err(err)?;
            p.show(View::List {
                keys: vec![
                    "id".into(),
                    "name".into(),
                    "auth_url".into(),
                    "status".into(),
                ],
                headers: vec![
                    "ID".into(),
                    "NAME".into(),
                    "AUTH_URL".into(),
                    "STATUS".into(),
                ],
                rows: sites
                    .iter()
                    .map(|s| {
                        vec![
                            json!(s.id.as_str()),
                            json!(s.name),
                            json!(s.auth_url),
                            json!(s.status.as_str()),
                        ]
                    })
                    .collect(),
            })?;
        }
        SiteCmd::Show { site } => {
            let s = pr.show_site(ctx, &site).await.map_err(err)?;
            p.show(site_view(&s))?;
        }
        SiteCmd::Validate { site } => {
            let v = pr.validate_site(ctx, &site).await.map_err(err)?;
            let ok = v.ok();
            let mut fields: Vec<(String, Value)> = vec![("site".into(), json!(v.site))];
            for c in &v.checks {
                let verdict = if c.ok { "OK" } else { "FAILED" };
                let text = if c.detail.is_empty() {
                    verdict.to_owned()
                } else {
                    format!("{verdict}: {}", c.detail)
                };
                fields.push((c.check.clone(), json!(text)));
            }
            fields.push(("result".into(), json!(if ok { "valid" } else { "invalid" })));
            p.show(View::Record { fields, note: None })?;
            if !ok {
                return Ok(Outcome::Failed);
            }
        }
    }
    Ok(Outcome::Success)
}

/// The fields of a site (never its credentials).
pub fn site_view(s: &Site) -> View {
    View::record(vec![
        ("id", json!(s.id.as_str())),
        ("name", json!(s.name)),
        ("description", json!(s.description)),
        ("auth_url", json!(s.auth_url)),
        ("region_name", json!(s.region_name)),
        ("status", json!(s.status.as_str())),
        ("created_at", json!(timestamp(&s.created_at))),
        (
            "last_validated_at",
            opt_timestamp(s.last_validated_at.as_ref()),
        ),
    ])
}

fn site_name(pr: &Protector, id: &SiteId) -> String {
    [pr.local_site(), pr.peer_site()]
        .into_iter()
        .find(|s| &s.id == id)
        .map_or_else(|| id.to_string(), |s| s.name.clone())
}

fn enum_text<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `protection-group show`.
pub fn pg_view(pr: &Protector, pg: &ProtectionGroup) -> View {
    View::record(vec![
        ("id", json!(pg.id.as_str())),
        ("name", json!(pg.name)),
        ("description", json!(pg.description)),
        ("status", json!(pg.status.as_str())),
        ("replication_type", json!(pg.replication_type.as_str())),
        ("primary_site", json!(site_name(pr, &pg.primary_site_id))),
        (
            "secondary_site",
            json!(site_name(pr, &pg.secondary_site_id)),
        ),
        (
            "current_primary_site",
            json!(site_name(pr, &pg.current_primary_site_id)),
        ),
        ("failover_count", json!(pg.failover_count)),
        (
            "last_failover_at",
            opt_timestamp(pg.last_failover_at.as_ref()),
        ),
        (
            "last_replication_at",
            opt_timestamp(pg.last_replication_at.as_ref()),
        ),
        ("version", json!(pg.version)),
        (
            "members",
            Value::Array(pg.members.iter().map(|m| json!(m.instance_name)).collect()),
        ),
        ("created_at", json!(timestamp(&pg.created_at))),
        ("updated_at", json!(timestamp(&pg.updated_at))),
    ])
}

fn member_view(m: &Member) -> View {
    View::record(vec![
        ("id", json!(m.id.as_str())),
        ("instance_id", json!(m.instance_id.as_str())),
        ("instance_name", json!(m.instance_name)),
        ("status", enum_text(&m.status)),
        ("boot_order", json!(m.boot_order)),
        ("flavor_id", json!(m.flavor_id.as_str())),
        (
            "volumes",
            Value::Array(m.volumes.iter().map(|v| json!(v.name)).collect()),
        ),
    ])
}

fn policy_view(pol: &MaskedPolicy) -> View {
    View::record(vec![
        (
            "protection_group_id",
            json!(pol.protection_group_id.as_str()),
        ),
        ("primary_fa_url", json!(pol.primary_fa_url)),
        ("primary_fa_api_token", json!(pol.primary_fa_api_token)),
        ("secondary_fa_url", json!(pol.secondary_fa_url)),
        ("secondary_fa_api_token", json!(pol.secondary_fa_api_token)),
        ("pure_pg_name", json!(pol.pure_pg_name)),
        ("rpo_minutes", json!(pol.rpo_minutes)),
        (
            "replication_interval_seconds",
            json!(pol.replication_interval_seconds),
        ),
        ("created_at", json!(timestamp(&pol.created_at))),
    ])
}

/// `sync-status` / `sync-force`: both sites' versions and the status line.
pub fn sync_view(pr: &Protector, s: &SyncStatus) -> View {
    View::record(vec![
        ("local_site", json!(site_name(pr, &s.local_site_id))),
        ("local_version", json!(s.local_version)),
        ("remote_site", json!(site_name(pr, &s.remote_site_id))),
        ("remote_version", json!(s.remote_version)),
        ("sync_status", json!(s.status.as_str())),
        ("last_sync_at", opt_timestamp(s.last_sync_at.as_ref())),
    ])
    .with_note(format!("Sync Status: {}", s.status.as_str()))
}

/// The table a failover/failback/test prints once the operation has started.
pub fn started_view(pr: &Protector, op: &Operation) -> View {
    View::record(vec![
        ("operation_id", json!(op.id.as_str())),
        ("operation_type", json!(op.operation_type.as_str())),
        ("status", json!(op.status.as_str())),
        ("progress", json!(op.progress)),
        ("source_site", json!(site_name(pr, &op.source_site_id))),
        ("target_site", json!(site_name(pr, &op.target_site_id))),
        (
            "started_at",
            json!(timestamp(op.started_at.as_ref().unwrap_or(&op.created_at))),
        ),
    ])
}

/// `operation show`.
pub fn operation_view(op: &Operation) -> View {
    View::record(vec![
        ("id", json!(op.id.as_str())),
        (
            "protection_group_id",
            json!(op.protection_group_id.as_str()),
        ),
        ("operation_type", json!(op.operation_type.as_str())),
        ("status", json!(op.status.as_str())),
        ("progress", json!(op.progress)),
        ("source_site_id", json!(op.source_site_id.as_str())),
        ("target_site_id", json!(op.target_site_id.as_str())),
        ("started_at", opt_timestamp(op.started_at.as_ref())),
        ("completed_at", opt_timestamp(op.completed_at.as_ref())),
        (
            "error_message",
            json!(op.error_message.as_deref().unwrap_or("None")),
        ),
        (
            "steps_completed",
            Value::Array(
                op.steps_completed
                    .iter()
                    .map(|s| json!(s.as_str()))
                    .collect(),
            ),
        ),
        (
            "steps_failed",
            Value::Array(op.steps_failed.iter().map(|s| json!(s.as_str())).collect()),
        ),
        ("result_data", op.result_data.clone()),
    ])
}

/// `operation list`: `pg_name` resolves a group id to its name.
pub fn operation_list_view(ops: &[Operation], pg_name: &dyn Fn(&str) -> String) -> View {
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
        rows: ops
            .iter()
            .map(|op| {
                vec![
                    json!(op.id.as_str()),
                    json!(pg_name(op.protection_group_id.as_str())),
                    json!(op.operation_type.as_str()),
                    json!(op.status.as_str()),
                    json!(op.progress),
                    opt_timestamp(op.started_at.as_ref().or(Some(&op.created_at))),
                ]
            })
            .collect(),
    }
}

fn mappings(m: &MappingArgs) -> Result<ResourceMappings, String> {
    Ok(ResourceMappings {
        networks: parse_mappings(&m.network).map_err(err)?,
        flavors: parse_mappings(&m.flavor).map_err(err)?,
        images: Default::default(),
    })
}

async fn pg(h: &Handle, c: PgCmd, p: &mut Printer<'_>) -> Result<Outcome, String> {
    let (pr, ctx) = (&h.protector, &h.ctx);
    match c {
        PgCmd::Create {
            name,
            replication_type,
            description,
            primary_site,
            secondary_site,
            volume_type,
            secondary_volume_type,
        } => {
            let req = CreateProtectionGroup {
                name,
                description,
                replication_type: match replication_type {
                    ReplicationArg::Async => ReplicationType::Async,
                    ReplicationArg::Sync => ReplicationType::Sync,
                },
                primary_site,
                secondary_site,
                volume_type,
                secondary_volume_type,
            };
            let g = pr.create_protection_group(ctx, &req).await.map_err(err)?;
            p.show(pg_view(pr, &g))?;
        }
        PgCmd::List => {
            let pgs = pr.list_protection_groups(ctx).await.map_err(err)?;
            p.show(View::List {
                keys: [
                    "id",
                    "name",
                    "status",
                    "replication_type",
                    "current_primary_site",
                ]
                .map(String::from)
                .to_vec(),
                headers: [
                    "ID",
                    "NAME",
                    "STATUS",
                    "REPLICATION_TYPE",
                    "CURRENT_PRIMARY_SITE",
                ]
                .map(String::from)
                .to_vec(),
                rows: pgs
                    .iter()
                    .map(|g| {
                        vec![
                            json!(g.id.as_str()),
                            json!(g.name),
                            json!(g.status.as_str()),
                            json!(g.replication_type.as_str()),
                            json!(site_name(pr, &g.current_primary_site_id)),
                        ]
                    })
                    .collect(),
            })?;
        }
        PgCmd::Show { pg } => {
            let g = pr.get_protection_group(ctx, &pg).await.map_err(err)?;
            p.show(pg_view(pr, &g))?;
        }
        PgCmd::Delete { pg } => {
            pr.delete_protection_group(ctx, &pg).await.map_err(err)?;
        }
        PgCmd::MemberAdd { pg, server } => {
            let m = pr.add_member(ctx, &pg, &server).await.map_err(err)?;
            p.show(member_view(&m))?;
        }
        PgCmd::MemberRemove { pg, server } => {
            pr.remove_member(ctx, &pg, &server).await.map_err(err)?;
        }
        PgCmd::PolicyCreate {
            pg,
            primary_fa_url,
            primary_fa_token,
            secondary_fa_url,
            secondary_fa_token,
            rpo_minutes,
            pure_pg_name,
            replication_interval,
        } => {
            let req = CreatePolicy {
                primary_fa_url,
                primary_fa_api_token: SecretString::from(primary_fa_token),
                secondary_fa_url,
                secondary_fa_api_token: SecretString::from(secondary_fa_token),
                pure_pg_name,
                rpo_minutes,
                replication_interval_seconds: replication_interval,
            };
            let pol = pr.create_policy(ctx, &pg, req).await.map_err(err)?;
            p.show(policy_view(&pol))?;
        }
        PgCmd::PolicyShow { pg } => {
            let pol = pr.show_policy(ctx, &pg).await.map_err(err)?;
            p.show(policy_view(&pol))?;
        }
        PgCmd::Failover {
            pg,
            failover_type,
            mappings: m,
            force,
        } => {
            let failover_type = match failover_type {
                FailoverTypeArg::Planned => FailoverType::Planned,
                FailoverTypeArg::Unplanned => FailoverType::Unplanned,
            };
            let req = FailoverRequest {
                failover_type,
                mappings: mappings(&m)?,
                force,
            };
            let rx = pr.subscribe();
            let op = pr.failover(ctx, &pg, req).await.map_err(err)?;
            let warning = if failover_type == FailoverType::Unplanned {
                let g = pr.get_protection_group(ctx, &pg).await.map_err(err)?;
                Some(unplanned_failover_warning(
                    &site_name(pr, &op.source_site_id),
                    &g.name,
                ))
            } else {
                None
            };
            return follow(h, rx, op, p, warning).await;
        }
        PgCmd::Failback {
            pg,
            failover_type,
            mappings: m,
            reverse_replication,
            force,
        } => {
            if failover_type == FailoverTypeArg::Unplanned {
                return Err("failback supports only --type planned".to_owned());
            }
            let req = FailbackRequest {
                mappings: mappings(&m)?,
                reverse_replication,
                force,
            };
            let rx = pr.subscribe();
            let op = pr.failback(ctx, &pg, req).await.map_err(err)?;
            return follow(h, rx, op, p, None).await;
        }
        PgCmd::TestFailover { pg, mappings: m } => {
            let req = TestFailoverRequest {
                mappings: mappings(&m)?,
            };
            let rx = pr.subscribe();
            let op = pr.test_failover(ctx, &pg, req).await.map_err(err)?;
            return follow(h, rx, op, p, None).await;
        }
        PgCmd::TestCleanup { pg } => {
            let rx = pr.subscribe();
            let op = pr.test_cleanup(ctx, &pg).await.map_err(err)?;
            return follow(h, rx, op, p, None).await;
        }
        PgCmd::SyncStatus { pg } => {
            let s = pr.sync_status(ctx, &pg).await.map_err(err)?;
            p.show(sync_view(pr, &s))?;
        }
        PgCmd::SyncForce { pg } => {
            let s = pr.sync_force(ctx, &pg).await.map_err(err)?;
            p.show(sync_view(pr, &s))?;
        }
    }
    Ok(Outcome::Success)
}

fn progress_bar(enabled: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(100),
        if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{bar:40.cyan/blue} {pos:>3}% {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn describe(op: &Operation) -> String {
    let phase = op.phase.map_or("", |p| p.as_str());
    let step = op.current_step.map_or("", |s| s.as_str());
    match (phase.is_empty(), step.is_empty()) {
        (true, true) => op.status.as_str().to_owned(),
        (false, true) => phase.to_owned(),
        (true, false) => step.to_owned(),
        (false, false) => format!("{phase} / {step}"),
    }
}

/// Prints the started table (and `warning`), follows the operation with a progress
/// bar until it ends, then prints its record.
async fn follow(
    h: &Handle,
    mut rx: broadcast::Receiver<protector_core::engine::ProgressEvent>,
    op: Operation,
    p: &mut Printer<'_>,
    warning: Option<String>,
) -> Result<Outcome, String> {
    let pr = &h.protector;
    let id = op.id.clone();
    let wait = pr.wait(&id);
    tokio::pin!(wait);
    let mut current = op;
    let mut finished: Option<Operation> = None;
    // Until the operation has really started (progress >= 10) or ended.
    while current.progress < 10 && !current.status.is_terminal() {
        tokio::select! {
            r = &mut wait => {
                finished = Some(r.map_err(err)?);
                break;
            }
            ev = rx.recv() => {
                match ev {
                    Ok(e) if e.operation_id == id => {
                        current.progress = e.progress;
                        current.status = e.status;
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
    let started = pr.get_operation(&h.ctx, &id).await.map_err(err)?;
    let table = p.global.format == crate::render::Format::Table;
    if table {
        let mut view = started_view(pr, &started);
        if let Some(w) = warning {
            view = view.with_note(w);
        }
        p.show(view)?;
    } else if let Some(w) = warning {
        // Machine formats print one document (the final record); the warning still
        // reaches the operator.
        eprintln!("{w}");
    }
    let done = match finished {
        Some(d) => d,
        None => {
            let bar = progress_bar(p.progress);
            bar.set_position(u64::from(started.progress));
            bar.set_message(describe(&started));
            let done = loop {
                tokio::select! {
                    r = &mut wait => break r.map_err(err)?,
                    ev = rx.recv() => {
                        if let Ok(e) = ev {
                            if e.operation_id == id {
                                bar.set_position(u64::from(e.progress));
                                let phase = e.phase.map_or("", |x| x.as_str());
                                let step = e.step.map_or("", |x| x.as_str());
                                bar.set_message(format!("{phase} / {step}"));
                            }
                        }
                    }
                }
            };
            bar.finish_and_clear();
            done
        }
    };
    // Re-read through the policy-checked path.
    let done = pr.get_operation(&h.ctx, &done.id).await.unwrap_or(done);
    if table {
        p.write("\n")?;
    }
    p.show(operation_view(&done))?;
    Ok(
        if done.status == protector_core::model::OperationStatus::Failed {
            Outcome::Failed
        } else {
            Outcome::Success
        },
    )
}

async fn operation(h: &Handle, c: OpCmd, p: &mut Printer<'_>) -> Result<Outcome, String> {
    let (pr, ctx) = (&h.protector, &h.ctx);
    match c {
        OpCmd::List { protection_group } => {
            let filter = OperationFilter {
                protection_group: protection_group.map(PgRef::Name),
                ..OperationFilter::default()
            };
            let mut ops = pr.list_operations(ctx, &filter).await.map_err(err)?;
            if ops.is_empty() {
                if let Some(PgRef::Name(r)) = &filter.protection_group {
                    // An id given: the engine resolves names only.
                    if let Ok(g) = pr.get_protection_group(ctx, r).await {
                        let f = OperationFilter {
                            protection_group: Some(PgRef::Id(g.id)),
                            ..OperationFilter::default()
                        };
                        ops = pr.list_operations(ctx, &f).await.map_err(err)?;
                    }
                }
            }
            let pgs = pr.list_protection_groups(ctx).await.unwrap_or_default();
            let name = |id: &str| {
                pgs.iter()
                    .find(|g| g.id.as_str() == id)
                    .map_or_else(|| id.to_owned(), |g| g.name.clone())
            };
            p.show(operation_list_view(&ops, &name))?;
        }
        OpCmd::Show { id, watch } => {
            let id = OperationId::new(id);
            let mut op = pr.get_operation(ctx, &id).await.map_err(err)?;
            if watch && !op.status.is_terminal() {
                op = watch_operation(pr, ctx, op, p.progress).await?;
            }
            p.show(operation_view(&op))?;
            if op.status == protector_core::model::OperationStatus::Failed {
                return Ok(Outcome::Failed);
            }
        }
    }
    Ok(Outcome::Success)
}

/// Polls the store (another process may be running the operation) until it ends.
async fn watch_operation(
    pr: &Protector,
    ctx: &RequestContext,
    mut op: Operation,
    progress: bool,
) -> Result<Operation, String> {
    let bar = progress_bar(progress);
    while !op.status.is_terminal() {
        bar.set_position(u64::from(op.progress));
        bar.set_message(describe(&op));
        tokio::time::sleep(WATCH_INTERVAL).await;
        op = pr.get_operation(ctx, &op.id).await.map_err(err)?;
    }
    bar.finish_and_clear();
    Ok(op)
}
