//! Call accounting: how many calls of each kind reached each site's services, and how
//! much virtual time has passed, since the world was built or the counters were reset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use protector_core::Service;

use crate::call::CallKind;
use crate::hash::FixedHash;
use crate::site::SimSite;

/// A snapshot of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls per site, service and kind (including calls refused by faults or a downed
    /// site: they reached the simulator).
    pub calls: Counts,
    /// Virtual time since the last reset.
    pub elapsed: Duration,
}

impl CallStats {
    /// Calls of one kind on one site.
    pub fn count(&self, site: SimSite, kind: CallKind) -> u64 {
        self.calls
            .get(&(site, kind.service(), kind))
            .copied()
            .unwrap_or(0)
    }

    /// Calls to one service of one site.
    pub fn service_total(&self, site: SimSite, service: Service) -> u64 {
        self.calls
            .iter()
            .filter(|((s, svc, _), _)| *s == site && *svc == service)
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls of one kind on both sites.
    pub fn kind_total(&self, kind: CallKind) -> u64 {
        self.calls
            .iter()
            .filter(|((_, _, k), _)| *k == kind)
            .map(|(_, n)| n)
            .sum()
    }

    /// All calls.
    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// Counts per site, service and kind.
type Counts = BTreeMap<(SimSite, Service, CallKind), u64>;

/// The live counters: looked up once per call, sorted only for a snapshot (which adds
/// each kind's service, a function of the kind).
type LiveCounts = HashMap<(SimSite, CallKind), u64, FixedHash>;

#[derive(Debug)]
pub(crate) struct Accounting {
    inner: Mutex<(LiveCounts, tokio::time::Instant)>,
}

impl Accounting {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new((LiveCounts::default(), tokio::time::Instant::now())),
        }
    }

    pub(crate) fn count(&self, site: SimSite, kind: CallKind) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g.0.entry((site, kind)).or_insert(0) += 1;
    }

    pub(crate) fn snapshot(&self) -> CallStats {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        CallStats {
            calls: g
                .0
                .iter()
                .map(|(&(site, kind), n)| ((site, kind.service(), kind), *n))
                .collect(),
            elapsed: tokio::time::Instant::now().duration_since(g.1),
        }
    }

    pub(crate) fn reset(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0.clear();
        g.1 = tokio::time::Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_snapshot_counts_calls_by_site_service_and_kind_until_reset() {
        let a = Accounting::new();
        a.count(SimSite::A, CallKind::GetServer);
        a.count(SimSite::A, CallKind::GetServer);
        a.count(SimSite::B, CallKind::Array("copy_volume"));
        tokio::time::advance(Duration::from_secs(3)).await;
        let s = a.snapshot();
        let expected: Counts = [
            ((SimSite::A, Service::Compute, CallKind::GetServer), 2),
            (
                (
                    SimSite::B,
                    Service::FlashArray,
                    CallKind::Array("copy_volume"),
                ),
                1,
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(s.calls, expected);
        assert_eq!(s.service_total(SimSite::A, Service::Compute), 2);
        assert_eq!(s.elapsed, Duration::from_secs(3));
        a.reset();
        assert_eq!(a.snapshot().total(), 0);
    }
}
