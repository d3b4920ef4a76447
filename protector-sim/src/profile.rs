//! Latency profiles: how long each kind of call takes and how many run at once.
//!
//! A [`LatencyProfile`] gives every [`LatencyClass`] a latency and a concurrency limit
//! per site and service. Calls beyond the limit queue (first come, first served) until a
//! slot frees. Foreground classes (tokens, GETs, FlashArray REST calls) hold their slot
//! while the caller waits; background classes (boot, stop, delete, manage, unmanage,
//! replication) answer at once and hold the slot until the resource reaches its new
//! state — the 30 s of a boot is the time the server holds one of Nova's 20 boot slots.
//!
//! [`LatencyProfile::realistic`] is exactly the design's table (§8); a benchmark reads it
//! back with [`LatencyProfile::table`] and computes the step-barrier bound with
//! [`LatencyProfile::step_barrier_bound`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::call::CallKind;
pub use crate::call::LatencyClass;

/// Latency and concurrency limit of one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassSpec {
    /// How long one call (or the background state change) takes.
    pub latency: Duration,
    /// How many run at once per site and service; `0` means unlimited.
    pub limit: usize,
}

/// A row of [`LatencyProfile::table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileRow {
    /// The class.
    pub class: LatencyClass,
    /// Its latency, scaled.
    pub latency: Duration,
    /// Its concurrency limit per site and service (`0` = unlimited).
    pub limit: usize,
}

/// Latencies and concurrency limits of every call class.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyProfile {
    name: String,
    classes: BTreeMap<LatencyClass, ClassSpec>,
    calls: BTreeMap<CallKind, Duration>,
    scale: f64,
}

impl LatencyProfile {
    /// Every call answers at once and nothing queues.
    pub fn zero() -> Self {
        let classes = LatencyClass::ALL
            .into_iter()
            .map(|c| {
                (
                    c,
                    ClassSpec {
                        latency: Duration::ZERO,
                        limit: 0,
                    },
                )
            })
            .collect();
        Self {
            name: "zero".to_owned(),
            classes,
            calls: BTreeMap::new(),
            scale: 1.0,
        }
    }

    /// The design's `realistic` profile (DESIGN §8), per call and per site.
    pub fn realistic() -> Self {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let rows = [
            (LatencyClass::Token, ms(100), 50),
            (LatencyClass::Api, ms(50), 50),
            (LatencyClass::Power, s(10), 50),
            (LatencyClass::Boot, s(30), 20),
            (LatencyClass::ServerDelete, s(5), 50),
            (LatencyClass::Manage, s(3), 10),
            (LatencyClass::UnmanageDelete, s(2), 10),
            (LatencyClass::ArrayRest, ms(20), 20),
            (LatencyClass::Replicate, s(15), 4),
        ];
        let classes = rows
            .into_iter()
            .map(|(c, latency, limit)| (c, ClassSpec { latency, limit }))
            .collect();
        Self {
            name: "realistic".to_owned(),
            classes,
            calls: BTreeMap::new(),
            scale: 1.0,
        }
    }

    /// The profile's name (`zero`, `realistic`, or what [`Self::named`] set).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the profile (for reports).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Multiplies every latency by `factor` (limits unchanged). Negative or non-finite
    /// factors count as zero.
    pub fn scaled(mut self, factor: f64) -> Self {
        self.scale = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            0.0
        };
        self
    }

    /// The scaling factor.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Replaces one class's latency and limit (`limit` 0 = unlimited).
    pub fn with_class(mut self, class: LatencyClass, latency: Duration, limit: usize) -> Self {
        self.classes.insert(class, ClassSpec { latency, limit });
        self
    }

    /// The scaled latency of a class.
    pub fn latency(&self, class: LatencyClass) -> Duration {
        self.apply_scale(
            self.classes
                .get(&class)
                .map_or(Duration::ZERO, |c| c.latency),
        )
    }

    /// Gives one kind of call its own latency (it keeps its class's slots).
    pub fn with_call_latency(mut self, call: CallKind, latency: Duration) -> Self {
        self.calls.insert(call, latency);
        self
    }

    /// The scaled latency of one kind of call: its own, else its class's.
    pub fn call_latency(&self, call: CallKind) -> Duration {
        match self.calls.get(&call) {
            Some(base) => self.apply_scale(*base),
            None => self.latency(call.class()),
        }
    }

    fn apply_scale(&self, base: Duration) -> Duration {
        if self.scale == 1.0 {
            base
        } else {
            Duration::from_secs_f64(base.as_secs_f64() * self.scale)
        }
    }

    /// The concurrency limit of a class per site and service (`0` = unlimited).
    pub fn limit(&self, class: LatencyClass) -> usize {
        self.classes.get(&class).map_or(0, |c| c.limit)
    }

    /// The whole table, scaled, in [`LatencyClass::ALL`] order.
    pub fn table(&self) -> Vec<ProfileRow> {
        LatencyClass::ALL
            .into_iter()
            .map(|class| ProfileRow {
                class,
                latency: self.latency(class),
                limit: self.limit(class),
            })
            .collect()
    }

    /// Time for `calls` calls of a class issued at once on one site and service:
    /// `ceil(calls / limit) × latency`.
    pub fn batch_time(&self, class: LatencyClass, calls: u64) -> Duration {
        if calls == 0 {
            return Duration::ZERO;
        }
        let limit = self.limit(class) as u64;
        let waves = if limit == 0 { 1 } else { calls.div_ceil(limit) };
        self.latency(class)
            .saturating_mul(u32::try_from(waves).unwrap_or(u32::MAX))
    }

    /// The design's step-barrier bound: for each step, the slowest of its batches
    /// (`max over classes of ceil(calls/limit) × latency`), summed over steps. `steps`
    /// lists, per step, the number of calls of each class the step issues on one site.
    pub fn step_barrier_bound(&self, steps: &[Vec<(LatencyClass, u64)>]) -> Duration {
        steps
            .iter()
            .map(|step| {
                step.iter()
                    .map(|&(class, calls)| self.batch_time(class, calls))
                    .max()
                    .unwrap_or(Duration::ZERO)
            })
            .sum()
    }
}

impl Default for LatencyProfile {
    /// The `zero` profile.
    fn default() -> Self {
        Self::zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_profile_matches_the_design_table() {
        let p = LatencyProfile::realistic();
        assert_eq!(p.latency(LatencyClass::Boot), Duration::from_secs(30));
        assert_eq!(p.limit(LatencyClass::Boot), 20);
        assert_eq!(p.latency(LatencyClass::Replicate), Duration::from_secs(15));
        assert_eq!(p.limit(LatencyClass::Replicate), 4);
        assert_eq!(p.table().len(), LatencyClass::ALL.len());
    }

    #[test]
    fn step_barrier_bound_sums_the_slowest_batch_of_each_step() {
        let p = LatencyProfile::realistic();
        let bound = p.step_barrier_bound(&[
            vec![(LatencyClass::Manage, 20), (LatencyClass::ArrayRest, 20)],
            vec![(LatencyClass::Boot, 40)],
        ]);
        assert_eq!(bound, Duration::from_secs(6 + 60));
    }

    #[test]
    fn a_call_can_have_its_own_latency_within_its_class() {
        let p = LatencyProfile::realistic()
            .with_call_latency(CallKind::ListFlavors, Duration::from_millis(5))
            .scaled(2.0);
        assert_eq!(
            p.call_latency(CallKind::ListFlavors),
            Duration::from_millis(10)
        );
        assert_eq!(
            p.call_latency(CallKind::GetServer),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn scaling_multiplies_latencies_only() {
        let p = LatencyProfile::realistic().scaled(0.5);
        assert_eq!(p.latency(LatencyClass::Boot), Duration::from_secs(15));
        assert_eq!(p.limit(LatencyClass::Boot), 20);
    }
}
