//! The final state of a run, by names and shapes rather than ids, as sections of
//! sorted lines; and a line diff of two states.
//!
//! Ids differ between the two runs (the order of concurrent creations decides which
//! id each resource draws), so every id is written as the name of what it stands for:
//! a Cinder volume id as `{vol:<name>}`, a server id as `{vm:<name>}`, a site id as
//! the site's name, and any other UUID as `{id}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use protector::core::model::{OperationFilter, ProtectionGroup};
use protector::core::ports::{Server, Volume};
use protector::purestorage::{PgSnapshotQuery, VolumeQuery};
use protector::sim::{InvariantInput, SimSite, SimWorld};

use super::run::{Deployment, Mode};

/// What a run left behind: section title → lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinalState {
    /// The mode that produced it.
    pub mode: Option<String>,
    /// Sections in title order, each a list of lines.
    pub sections: BTreeMap<String, Vec<String>>,
    /// The simulator's invariant violations, as sentences (normalised).
    pub violations: Vec<String>,
}

impl FinalState {
    /// The state as text, one `[section]` header per section.
    pub fn render(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (title, lines) in &self.sections {
            out.push(format!("[{title}]"));
            out.extend(lines.iter().map(|l| format!("  {l}")));
        }
        out
    }

    /// The lines of one section (empty when absent).
    pub fn section(&self, title: &str) -> &[String] {
        self.sections.get(title).map_or(&[], Vec::as_slice)
    }
}

/// `-` lines only in `left`, `+` lines only in `right`, with a line of context; `None`
/// when both render the same.
pub fn diff(left: &[String], right: &[String]) -> Option<String> {
    if left == right {
        return None;
    }
    // Longest common subsequence, then walk it.
    let (n, m) = (left.len(), right.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if left[i] == right[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut rows: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && left[i] == right[j] {
            rows.push((' ', &left[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            rows.push(('+', &right[j]));
            j += 1;
        } else {
            rows.push(('-', &left[i]));
            i += 1;
        }
    }
    let changed: Vec<usize> = (0..rows.len()).filter(|&k| rows[k].0 != ' ').collect();
    let mut out = String::new();
    let mut last: Option<usize> = None;
    for (k, (mark, line)) in rows.iter().enumerate() {
        let near = changed
            .iter()
            .any(|&c| c.abs_diff(k) <= 1 || (line.starts_with('[') && c > k && c - k <= 40));
        if !near {
            continue;
        }
        if last.is_some_and(|l| l + 1 != k) {
            out.push_str("  …\n");
        }
        let _ = writeln!(out, "{mark} {line}");
        last = Some(k);
    }
    Some(out)
}

/// Every UUID-shaped run (`8-4-4-4-12` hex digits) in `text` replaced by `{id}`.
fn mask_uuids(text: &str) -> String {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < b.len() {
        let mut k = i;
        for (g, len) in SHAPE.iter().enumerate() {
            if g > 0 {
                if b.get(k) != Some(&b'-') {
                    out.push(char::from(b[i]));
                    i += 1;
                    continue 'scan;
                }
                k += 1;
            }
            if !(0..*len).all(|d| b.get(k + d).is_some_and(u8::is_ascii_hexdigit)) {
                let c = text[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
                continue 'scan;
            }
            k += len;
        }
        let preceded = i > 0 && b[i - 1].is_ascii_hexdigit();
        if preceded || b.get(k).is_some_and(u8::is_ascii_hexdigit) {
            out.push(char::from(b[i]));
            i += 1;
            continue;
        }
        out.push_str("{id}");
        i = k;
    }
    out
}

/// Every RFC 3339 time (`2025-03-15T09:00:00.662Z`, with or without fraction or
/// offset) in `text` replaced by `{time}`: the HTTP run is on real time.
fn mask_times(text: &str) -> String {
    let b = text.as_bytes();
    let digits =
        |at: usize, n: usize| (at..at + n).all(|k| b.get(k).is_some_and(u8::is_ascii_digit));
    let is = |at: usize, c: u8| b.get(at) == Some(&c);
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let stamp = digits(i, 4)
            && is(i + 4, b'-')
            && digits(i + 5, 2)
            && is(i + 7, b'-')
            && digits(i + 8, 2)
            && is(i + 10, b'T')
            && digits(i + 11, 2)
            && is(i + 13, b':')
            && digits(i + 14, 2)
            && is(i + 16, b':')
            && digits(i + 17, 2);
        if !stamp {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let mut k = i + 19;
        if is(k, b'.') && digits(k + 1, 1) {
            k += 1;
            while digits(k, 1) {
                k += 1;
            }
        }
        if is(k, b'Z') {
            k += 1;
        } else if (is(k, b'+') || is(k, b'-'))
            && digits(k + 1, 2)
            && is(k + 3, b':')
            && digits(k + 4, 2)
        {
            k += 6;
        }
        out.push_str("{time}");
        i = k;
    }
    out
}

/// Known ids → what they name.
#[derive(Default)]
struct Names {
    ids: BTreeMap<String, String>,
}

impl Names {
    fn add(&mut self, id: &str, label: String) {
        if !id.is_empty() {
            self.ids.entry(id.to_owned()).or_insert(label);
        }
    }

    fn norm(&self, text: &str) -> String {
        let mut s = text.to_owned();
        // Longest first, so an id never rewrites part of a longer one.
        let mut ids: Vec<(&String, &String)> = self.ids.iter().collect();
        ids.sort_by_key(|(id, _)| std::cmp::Reverse(id.len()));
        for (id, label) in ids {
            if s.contains(id.as_str()) {
                s = s.replace(id.as_str(), label);
            }
        }
        mask_times(&mask_uuids(&s))
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Reads both clouds (as the cloud admin, in-process: the same reader for both runs),
/// both arrays, both sites' stores and the invariants.
pub async fn capture(mode: Mode, world: &SimWorld, d: &Deployment) -> FinalState {
    let mut servers: BTreeMap<SimSite, Vec<Server>> = BTreeMap::new();
    let mut volumes: BTreeMap<SimSite, Vec<Volume>> = BTreeMap::new();
    let mut names = Names::default();
    for (id, name) in &d.site_names {
        names.add(id.as_str(), name.clone());
    }
    for site in SimSite::BOTH {
        names.add(world.site(site).site_id.as_str(), site.name().to_owned());
        let admin = world.admin_context(site).expect("admin context");
        let c = world.clients(site, &admin);
        let s = c.compute.list_servers().await.expect("list servers");
        let v = c.block_storage.list_volumes().await.expect("list volumes");
        for x in &s {
            names.add(x.id.as_str(), format!("{{vm:{}}}", x.name));
        }
        for x in &v {
            names.add(x.id.as_str(), format!("{{vol:{}}}", x.name));
            if let Some(g) = &x.group_id {
                names.add(g.as_str(), "{group}".to_owned());
            }
        }
        servers.insert(site, s);
        volumes.insert(site, v);
    }
    let mut groups = Vec::new();
    for site in SimSite::BOTH {
        let meta = d.stores.metadata(site);
        for pg in meta.list_protection_groups(None).await.expect("groups") {
            names.add(pg.id.as_str(), format!("{{pg:{}}}", pg.name));
            for m in &pg.members {
                names.add(m.id.as_str(), format!("{{member:{}}}", m.instance_name));
                names.add(
                    m.instance_id.as_str(),
                    format!("{{vm:{}}}", m.instance_name),
                );
                for v in &m.volumes {
                    names.add(v.volume_id.as_str(), format!("{{vol:{}}}", v.name));
                }
            }
            groups.push((site, pg));
        }
    }
    // The workload's original resources, which a failover leaves behind or deletes.
    for w in world.workloads() {
        for s in &w.servers {
            names.add(s.id.as_str(), format!("{{vm:{}}}", s.name));
            names.add(
                s.boot_volume.id.as_str(),
                format!("{{vol:{} boot, original}}", s.name),
            );
            for (i, v) in s.data_volumes.iter().enumerate() {
                names.add(
                    v.id.as_str(),
                    format!("{{vol:{} data {}, original}}", s.name, i + 1),
                );
            }
        }
    }

    let mut operations = BTreeMap::new();
    for site in SimSite::BOTH {
        let mut list = d
            .stores
            .operations(site)
            .list_operations(&OperationFilter::default())
            .await
            .expect("operations");
        list.sort_by_key(|op| op.created_at);
        for op in &list {
            let label = format!("{{op:{}}}", op.operation_type);
            // Test copies on the array are named `dr-<first 8 of the operation id>-…`.
            names.add(op.id.as_str().get(..8).unwrap_or_default(), label.clone());
            names.add(op.id.as_str(), label);
        }
        operations.insert(site, list);
    }

    let mut st = FinalState {
        mode: Some(mode.to_string()),
        ..FinalState::default()
    };
    let mut put = |title: String, lines: Vec<String>| {
        st.sections.insert(title, lines);
    };

    let sites = d
        .stores
        .metadata(SimSite::A)
        .list_sites()
        .await
        .expect("sites");
    put(
        "sites (site-a's store)".into(),
        sorted(
            sites
                .iter()
                .map(|s| {
                    format!(
                        "{} status={} description={:?}",
                        s.name, s.status, s.description
                    )
                })
                .collect(),
        ),
    );

    for (site, pg) in &groups {
        put(
            format!("protection group {} ({}'s copy)", pg.name, site.name()),
            group_lines(pg, d, &names),
        );
    }

    for site in SimSite::BOTH {
        let ops = d.stores.operations(site);
        let mut lines = Vec::new();
        for op in &operations[&site] {
            lines.push(format!(
                "{}{} {} progress={} {}→{} completed=[{}] failed=[{}] error={:?}",
                op.operation_type,
                op.failover_type
                    .map(|t| format!("({t})"))
                    .unwrap_or_default(),
                op.status,
                op.progress,
                d.site_name(&op.source_site_id),
                d.site_name(&op.target_site_id),
                join(op.steps_completed.iter().map(ToString::to_string)),
                join(op.steps_failed.iter().map(ToString::to_string)),
                op.error_message.as_deref().map(|m| names.norm(m)),
            ));
            // The journal as a multiset of events: fan-out makes the order of
            // concurrent creations differ between runs, never what was created.
            let journal = ops.journal(&op.id).await.expect("journal");
            let mut events: BTreeMap<String, usize> = BTreeMap::new();
            for e in &journal {
                let mut event = serde_json::to_value(&e.event).expect("event as JSON");
                // How long a boot took is measured on the clock, which runs in real time
                // over HTTP: a loaded machine makes it a second longer there.
                if event["data"]["note"] == "healthy" {
                    event["data"]["seconds"] = serde_json::Value::from("{seconds}");
                }
                let text = names.norm(&event.to_string());
                *events.entry(text).or_default() += 1;
            }
            for (e, n) in events {
                lines.push(format!("    journal {n}× {e}"));
            }
        }
        put(format!("operations ({}'s store)", site.name()), lines);
    }

    for site in SimSite::BOTH {
        put(
            format!("servers on {}", site.name()),
            sorted(
                servers[&site]
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} flavor={} nets=[{}] volumes=[{}] metadata=[{}]",
                            s.name,
                            s.status,
                            s.flavor_name.as_deref().unwrap_or("?"),
                            join(s.addresses.iter().map(|a| a.network_name.clone())),
                            join(s.volumes_attached.iter().map(|v| names.norm(v.as_str()))),
                            join(
                                s.metadata
                                    .iter()
                                    .map(|(k, v)| names.norm(&format!("{k}={v}")))
                            ),
                        )
                    })
                    .collect(),
            ),
        );
        put(
            format!("volumes on {}", site.name()),
            sorted(
                volumes[&site]
                    .iter()
                    .map(|v| {
                        let attached = v
                            .attachments
                            .iter()
                            .map(|a| names.norm(&format!("{:?}", a)));
                        names.norm(&format!(
                            "{} {} {}GiB type={} bootable={} array={} group={} attached=[{}]",
                            v.name,
                            v.status,
                            v.size_gb,
                            v.volume_type.as_deref().unwrap_or("-"),
                            v.bootable,
                            v.array_volume_name().unwrap_or("-"),
                            v.group_id.is_some(),
                            join(attached),
                        ))
                    })
                    .collect(),
            ),
        );
    }

    for site in SimSite::BOTH {
        let array = world.array(site);
        let name = site.array_name();
        let vols = array
            .list_volumes(&VolumeQuery::default())
            .await
            .expect("array volumes");
        put(
            format!("volumes on {name}"),
            sorted(
                vols.iter()
                    .map(|v| {
                        names.norm(&format!(
                            "{} {}B destroyed={} pod={} source={}",
                            v.name,
                            v.provisioned,
                            v.destroyed,
                            v.pod.as_ref().map_or("-", |p| p.name.as_str()),
                            v.source.as_ref().map_or("-", |p| p.name.as_str()),
                        ))
                    })
                    .collect(),
            ),
        );
        let pgs = array
            .list_protection_groups(&[])
            .await
            .expect("array protection groups");
        let mut lines = Vec::new();
        for g in &pgs {
            let members = if g.is_local && !g.destroyed {
                let v = array
                    .list_protection_group_volumes(&g.name)
                    .await
                    .expect("group volumes");
                let v = sorted(v.iter().map(|x| names.norm(x)).collect());
                let t = array
                    .list_protection_group_targets(&g.name)
                    .await
                    .expect("group targets");
                format!(
                    " volumes=[{}] targets=[{}]",
                    v.join(", "),
                    join(t.iter().map(|x| format!("{} {}", x.member.name, x.status))),
                )
            } else {
                String::new()
            };
            lines.push(format!(
                "{} local={} source={} destroyed={} schedule={}/{}ms targets={} volumes={}{members}",
                g.name,
                g.is_local,
                g.source.name,
                g.destroyed,
                g.replication_schedule.enabled,
                g.replication_schedule.frequency_ms,
                g.target_count,
                g.volume_count,
            ));
        }
        put(format!("protection groups on {name}"), sorted(lines));
        let snaps = array
            .list_pg_snapshots(&PgSnapshotQuery::default())
            .await
            .expect("group snapshots");
        put(
            format!("protection-group snapshots on {name}"),
            sorted(
                snaps
                    .iter()
                    .map(|s| format!("{} destroyed={}", s.name, s.destroyed))
                    .collect(),
            ),
        );
        let pods = array.list_pods(&[]).await.expect("pods");
        put(
            format!("pods on {name}"),
            sorted(
                pods.iter()
                    .map(|p| {
                        format!(
                            "{} promotion={} destroyed={} arrays=[{}]",
                            p.name,
                            p.promotion_status,
                            p.destroyed,
                            join(p.arrays.iter().map(|a| format!("{} {}", a.name, a.status))),
                        )
                    })
                    .collect(),
            ),
        );
    }

    // The invariants over both sites' records.
    let mut input = InvariantInput::default();
    for site in SimSite::BOTH {
        let meta = d.stores.metadata(site);
        let ops = d.stores.operations(site);
        input
            .protection_groups
            .extend(meta.list_protection_groups(None).await.expect("groups"));
        for op in ops
            .list_operations(&OperationFilter::default())
            .await
            .expect("operations")
        {
            input
                .journals
                .extend(ops.journal(&op.id).await.expect("journal"));
            input.operations.push(op);
        }
    }
    if let Err(v) = world.check_invariants(&input) {
        st.violations = v.iter().map(|v| names.norm(&v.to_string())).collect();
    }
    st
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn group_lines(pg: &ProtectionGroup, d: &Deployment, names: &Names) -> Vec<String> {
    let site = |id: &protector::core::ids::SiteId| d.site_name(id);
    let mut lines = vec![
        format!(
            "status={} type={} version={} failovers={}",
            pg.status, pg.replication_type, pg.version, pg.failover_count
        ),
        format!(
            "primary={} secondary={} current_primary={} replication_source={}",
            site(&pg.primary_site_id),
            site(&pg.secondary_site_id),
            site(&pg.current_primary_site_id),
            pg.replication_source_site_id
                .as_ref()
                .map_or_else(|| "-".to_owned(), site),
        ),
        format!(
            "last_failover_at set={} last_replication_at set={}",
            pg.last_failover_at.is_some(),
            pg.last_replication_at.is_some()
        ),
        format!(
            "test_resources={}",
            pg.test_resources
                .as_ref()
                .map_or_else(|| "none".to_owned(), |t| names.norm(&format!("{t:?}")))
        ),
    ];
    let mut bindings = Vec::new();
    for (id, b) in &pg.sites {
        bindings.push(format!(
            "binding {}: volume_type={} consistency_group={}",
            site(id),
            b.volume_type_name.as_deref().unwrap_or("-"),
            b.consistency_group_id.is_some(),
        ));
    }
    lines.extend(sorted(bindings));
    let mut stale = Vec::new();
    for (id, s) in &pg.stale {
        let mut servers: Vec<String> = s.servers.iter().map(|x| names.norm(x.as_str())).collect();
        let mut volumes: Vec<String> = s.volumes.iter().map(|x| names.norm(x.as_str())).collect();
        servers.sort();
        volumes.sort();
        stale.push(format!(
            "stale on {}: servers=[{}] volumes=[{}]",
            site(id),
            servers.join(", "),
            volumes.join(", ")
        ));
    }
    lines.extend(sorted(stale));
    for m in &pg.mappings {
        lines.push(names.norm(&format!(
            "mappings {}→{}: {:?}",
            site(&m.source_site_id),
            site(&m.target_site_id),
            m.mappings
        )));
    }
    let mut members: Vec<String> = pg
        .members
        .iter()
        .map(|m| {
            let mut vols: Vec<String> = m
                .volumes
                .iter()
                .map(|v| {
                    names.norm(&format!(
                        "{} {}GiB bootable={} boot_index={:?} device={:?} type={} array={}",
                        v.name,
                        v.size_gb,
                        v.bootable,
                        v.boot_index,
                        v.device,
                        v.volume_type,
                        v.array_volume_name
                    ))
                })
                .collect();
            vols.sort();
            names.norm(&format!(
                "member {} ({}) status={:?} boot_order={} flavor={:?} nets=[{}] volumes=[{}]",
                m.instance_name,
                m.instance_id,
                m.status,
                m.boot_order,
                m.flavor_name,
                join(m.networks.iter().map(|n| format!(
                    "{} ip={:?}",
                    n.network_name.as_deref().unwrap_or("?"),
                    n.fixed_ip
                ))),
                vols.join("; "),
            ))
        })
        .collect();
    members.sort();
    lines.extend(members);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_diff_marks_what_each_side_alone_has_and_is_none_for_equal_states() {
        let left = lines(&["[servers]", "  vm-1 ACTIVE", "  vm-2 ACTIVE", "[volumes]"]);
        let right = lines(&["[servers]", "  vm-1 ACTIVE", "  vm-2 SHUTOFF", "[volumes]"]);
        assert_eq!(diff(&left, &left), None);
        let d = diff(&left, &right).expect("a difference");
        assert!(d.contains("-   vm-2 ACTIVE\n"), "{d}");
        assert!(d.contains("+   vm-2 SHUTOFF\n"), "{d}");
        assert!(
            d.contains("  [servers]\n"),
            "the section header gives context: {d}"
        );
    }

    #[test]
    fn ids_are_written_by_name_and_unknown_ids_and_times_are_masked() {
        let mut names = Names::default();
        names.add(
            "0b6e0a48-5d0e-4c39-9d5e-2f3b7e1c9a10",
            "{vol:db-boot}".into(),
        );
        let text = "volume-0b6e0a48-5d0e-4c39-9d5e-2f3b7e1c9a10-cinder \
                    from 7f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f at 2025-03-15T09:00:00.662Z, \
                    not 0b6e0a48x";
        assert_eq!(
            names.norm(text),
            "volume-{vol:db-boot}-cinder from {id} at {time}, not 0b6e0a48x"
        );
        assert_eq!(mask_times("2025-03-15T09:00:00+00:00."), "{time}.");
        assert_eq!(mask_uuids("é-1234"), "é-1234");
    }
}
