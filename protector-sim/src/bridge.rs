//! Where the clouds meet the arrays: the call gate the fabric consults before every
//! FlashArray call, and the array side effects of Nova and Cinder transitions (the
//! Pure driver's renames and destroys, host connections, write sequences).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use protector_core::{BackendError, TokioClock};

use crate::call::{CallKind, LatencyClass};
use crate::cloud::state::ArrayEffect;
use crate::flasharray::state::{after_pod, split_pod};
use crate::flasharray::{ArrayFabric, ArrayFabricState, CallGate};
use crate::gate::Gate;
use crate::site::SimSite;
use crate::world::WorldInner;

/// The array-side name of a Cinder volume now: the recorded name, or the same name
/// inside a pod (`<pod>::<name>`) once the volume was moved into one, as the Pure driver
/// resolves a sync-replicated volume's name from its pod.
fn resolve<'a>(s: &ArrayFabricState, array: &str, name: &'a str) -> Cow<'a, str> {
    let pods = s.pod_names(array);
    if pods.is_empty() || s.has_volume(array, name) {
        return Cow::Borrowed(name);
    }
    let base = after_pod(name);
    pods.into_iter()
        .map(|pod| format!("{pod}::{base}"))
        .find(|candidate| s.has_volume(array, candidate))
        .map_or(Cow::Borrowed(name), Cow::Owned)
}

/// Appends an effect's `Debug` text, written without the general formatter for the
/// names the simulator uses (which `Debug` prints as they are, in quotes).
fn push_effect(s: &mut String, effect: &ArrayEffect) {
    match effect {
        ArrayEffect::Writing { volume, writing } => {
            s.push_str("Writing { volume: ");
            push_quoted(s, volume);
            s.push_str(if *writing {
                ", writing: true }"
            } else {
                ", writing: false }"
            });
        }
        ArrayEffect::Rename { from, to } => {
            s.push_str("Rename { from: ");
            push_quoted(s, from);
            s.push_str(", to: ");
            push_quoted(s, to);
            s.push_str(" }");
        }
        ArrayEffect::Destroy { volume } => {
            s.push_str("Destroy { volume: ");
            push_quoted(s, volume);
            s.push_str(" }");
        }
    }
}

/// The bytes `{:?}` prints as they are, without escaping.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':' | b'.' | b'#' | b'@');
        b += 1;
    }
    t
};

/// Appends `v` as `{:?}` prints it.
fn push_quoted(s: &mut String, v: &str) {
    let plain = v.bytes().all(|b| PLAIN[usize::from(b)]);
    if plain {
        s.push('"');
        s.push_str(v);
        s.push('"');
    } else {
        // Writing to a `String` cannot fail.
        let _ = write!(s, "{v:?}");
    }
}

/// `to` with the pod prefix of `from`, as the Pure driver keeps it on rename.
fn keep_pod<'a>(from: &str, to: &'a str) -> Cow<'a, str> {
    let base = after_pod(to);
    match split_pod(from) {
        Some((pod, _)) => Cow::Owned(format!("{pod}::{base}")),
        None => Cow::Borrowed(base),
    }
}

pub(crate) fn new_fabric(seed: u64, clock: Arc<TokioClock>) -> ArrayFabric {
    ArrayFabric::new(seed, clock)
}

/// Applies the world's accounting, fault rules, latency and limits to array calls.
/// Replication (`create_pg_snapshot`) answers at once but holds one of the site's
/// replication slots for the transfer time, so at most `limit` transfers are in flight
/// per array and later ones wait for a slot before they start.
pub(crate) struct ArrayGate {
    gate: Arc<Gate>,
}

impl ArrayGate {
    pub(crate) fn new(gate: Arc<Gate>) -> Self {
        Self { gate }
    }
}

#[async_trait]
impl CallGate for ArrayGate {
    async fn before_call(&self, array: &str, call: &'static str) -> Result<(), BackendError> {
        let Some(site) = SimSite::of_array(array) else {
            return Ok(());
        };
        let kind = CallKind::Array(call);
        if kind.class() == LatencyClass::Replicate {
            self.gate.admit(site, kind).await?;
            let permit = self.gate.slot(site, kind).await;
            let hold = self.gate.profile.latency(LatencyClass::Replicate);
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                drop(permit);
            });
        } else {
            self.gate.foreground(site, kind).await?;
        }
        Ok(())
    }
}

impl WorldInner {
    /// Carries out array side effects of a cloud transition. Failures (an array down,
    /// a name gone) are logged, not raised: the cloud has already moved on, as a real
    /// driver's background work would.
    ///
    /// The effects are applied under one lock of the fabric, each logged as soon as it
    /// is applied: nothing awaits between two of them, so no other call could come in
    /// between anyway, and the clock reads the same for all of them.
    pub(crate) fn apply_array_effects(&self, site: SimSite, effects: Vec<ArrayEffect>) {
        let array = site.array_name();
        self.fabric.with_state(|s| {
            for effect in &effects {
                let now = s.now_ms();
                let r = match effect {
                    ArrayEffect::Writing { volume, writing } => {
                        let volume = resolve(s, array, volume);
                        s.set_writing(array, &volume, *writing, now)
                    }
                    ArrayEffect::Rename { from, to } => {
                        let from = resolve(s, array, from);
                        s.rename_volume_only(array, &from, &keep_pod(&from, to), now)
                    }
                    ArrayEffect::Destroy { volume } => {
                        let volume = resolve(s, array, volume);
                        s.destroy_volume(array, &volume, now)
                    }
                };
                // The event log has its own lock and never calls back into the fabric.
                self.log.record_with(Some(site), |text| {
                    text.push_str("array ");
                    push_effect(text, effect);
                    if let Err(e) = &r {
                        text.push_str(" failed: ");
                        text.push_str(&e.message);
                    }
                });
            }
        });
    }

    /// Sets the host connections of a server's array volumes (1 while attached).
    pub(crate) fn set_attached(
        &self,
        site: SimSite,
        server: &protector_core::ids::ServerId,
        attached: bool,
    ) {
        let names: Vec<String> = self.with_cloud(site, |c| {
            c.servers
                .get(server)
                .map(|s| {
                    s.devices
                        .iter()
                        .filter_map(|(vid, _)| c.volumes.get(vid))
                        .filter_map(|v| v.array_volume_name().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        });
        let array = site.array_name();
        let count = u32::from(attached);
        self.fabric.with_state(|s| {
            for name in names {
                let name = resolve(s, array, &name);
                // A volume that is gone has no connections to set.
                let _ = s.set_connection_count(array, &name, count, s.now_ms());
            }
        });
    }

    /// What the Pure driver finds when it looks up a manage source: its size in bytes,
    /// or why it refuses.
    pub(crate) fn manage_lookup(&self, site: SimSite, source: &str) -> Result<u64, String> {
        let array = site.array_name();
        self.fabric.with_state(|s| {
            if !s.is_array_up(array) {
                return Err(format!("array {array} is unreachable"));
            }
            let v = s
                .volume_summary(array, source, s.now_ms())
                .map_err(|e| e.message)?;
            if v.destroyed {
                return Err(format!("{source}: Volume has been destroyed."));
            }
            if v.connection_count > 0 {
                return Err(format!(
                    "{source}: volume is connected to {} host(s)",
                    v.connection_count
                ));
            }
            Ok(v.provisioned)
        })
    }

    pub(crate) fn bridge_create_volume(
        &self,
        site: SimSite,
        name: &str,
        bytes: u64,
    ) -> Result<(), BackendError> {
        self.fabric.with_state(|s| {
            s.create_volume(site.array_name(), name, bytes, s.now_ms())
                .map(|_| ())
        })
    }

    /// Names of the array's volumes that are not destroyed.
    pub(crate) fn bridge_live_volumes(&self, site: SimSite) -> Vec<String> {
        let array = site.array_name();
        self.fabric.with_state(|s| {
            s.all_volumes(s.now_ms())
                .into_iter()
                .filter(|(a, v)| a == array && !v.destroyed)
                .map(|(_, v)| v.name)
                .collect()
        })
    }

    /// The write sequence of an array volume, or else of a volume snapshot.
    pub(crate) fn bridge_seq(&self, site: SimSite, name: &str) -> Result<u64, BackendError> {
        let array = site.array_name();
        self.fabric.with_state(|s| {
            let now = s.now_ms();
            let volume = resolve(s, array, name);
            if s.has_volume(array, &volume) {
                s.write_seq(array, &volume, now)
            } else {
                s.snapshot_write_seq(array, name, now)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effect_text_is_the_debug_text() {
        let effects = [
            ArrayEffect::Writing {
                volume: "volume-1f-cinder".to_owned(),
                writing: true,
            },
            ArrayEffect::Writing {
                volume: "pod::v".to_owned(),
                writing: false,
            },
            ArrayEffect::Rename {
                from: "src".to_owned(),
                to: "volume-x-cinder".to_owned(),
            },
            ArrayEffect::Destroy {
                volume: "we\"ird \\ näme\n".to_owned(),
            },
        ];
        for e in &effects {
            let mut s = String::new();
            push_effect(&mut s, e);
            assert_eq!(s, format!("{e:?}"));
        }
    }
}
