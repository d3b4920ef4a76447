//! Fault rules: verdicts for calls, installed with RAII guards.
//!
//! A [`FaultRule`] selects calls (by site, service, call kind, the nth matching call,
//! or a seeded probability) and gives them a [`Verdict`]: pass, delay, fail with a
//! [`BackendErrorKind`], or hang forever. Rules are consulted in installation order and
//! the first one that fires decides. [`crate::SimWorld::fault`] installs a rule and
//! returns a [`FaultGuard`]; dropping the guard removes the rule.
//!
//! Probabilities draw from a per-rule RNG derived from the world seed and the rule's
//! installation number, so the same scenario with the same seed fails the same calls.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protector_core::{Applied, BackendError, BackendErrorKind, Service};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::call::CallKind;
use crate::seed::derive_seed;
use crate::site::SimSite;

/// What happens to a call a rule selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through untouched (shields the call from later rules).
    Pass,
    /// Let it through after this extra delay.
    Delay(Duration),
    /// Answer with an error of this kind and message.
    Fail {
        /// The error kind.
        kind: BackendErrorKind,
        /// The service's message.
        message: String,
    },
    /// Never answer (the caller's timeout decides).
    Hang,
}

/// A fault rule: selectors plus a verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub(crate) site: Option<SimSite>,
    pub(crate) service: Option<Service>,
    pub(crate) call: Option<CallKind>,
    pub(crate) nth: Option<u64>,
    pub(crate) probability: Option<f64>,
    pub(crate) times: Option<u64>,
    pub(crate) applied: Applied,
    pub(crate) verdict: Verdict,
}

impl FaultRule {
    /// A rule with `verdict` that selects every call (narrow it with the selectors).
    pub fn new(verdict: Verdict) -> Self {
        Self {
            site: None,
            service: None,
            call: None,
            nth: None,
            probability: None,
            times: None,
            applied: Applied::No,
            verdict,
        }
    }

    /// Selected calls fail with `kind` and `message`.
    pub fn fail(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        Self::new(Verdict::Fail {
            kind,
            message: message.into(),
        })
    }

    /// Selected calls are delayed by `by`.
    pub fn delay(by: Duration) -> Self {
        Self::new(Verdict::Delay(by))
    }

    /// Selected calls never answer.
    pub fn hang() -> Self {
        Self::new(Verdict::Hang)
    }

    /// Selected calls pass, untouched by rules installed later.
    pub fn pass() -> Self {
        Self::new(Verdict::Pass)
    }

    /// Only calls to this site (for FlashArray calls: to this site's array).
    pub fn on_site(mut self, site: SimSite) -> Self {
        self.site = Some(site);
        self
    }

    /// Only calls to this service.
    pub fn on_service(mut self, service: Service) -> Self {
        self.service = Some(service);
        self
    }

    /// Only calls of this kind.
    pub fn on_call(mut self, call: CallKind) -> Self {
        self.service = Some(call.service());
        self.call = Some(call);
        self
    }

    /// Only the `n`th call the other selectors match (1-based).
    pub fn nth(mut self, n: u64) -> Self {
        self.nth = Some(n);
        self
    }

    /// Each matching call is selected with probability `p` (seeded).
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = Some(p.clamp(0.0, 1.0));
        self
    }

    /// The rule fires at most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// A failing call takes effect first and then reports the error, marked "may have
    /// been applied" (a lost answer). Without this, failures happen before any effect.
    pub fn after_applying(mut self) -> Self {
        self.applied = Applied::Maybe;
        self
    }

    fn selects(&self, site: SimSite, kind: CallKind) -> bool {
        self.site.is_none_or(|s| s == site)
            && self.service.is_none_or(|s| s == kind.service())
            && self.call.is_none_or(|c| c == kind)
    }
}

/// The HTTP status a service answers with for an error kind.
pub(crate) fn status_for(kind: BackendErrorKind) -> u16 {
    match kind {
        BackendErrorKind::NotFound => 404,
        BackendErrorKind::Conflict => 409,
        BackendErrorKind::Auth => 401,
        BackendErrorKind::Forbidden => 403,
        BackendErrorKind::Throttled => 429,
        BackendErrorKind::Transient => 503,
        _ => 400,
    }
}

/// The decision for one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) verdict: Verdict,
    pub(crate) applied: Applied,
}

impl Decision {
    pub(crate) fn error(&self, service: Service) -> Option<BackendError> {
        match &self.verdict {
            Verdict::Fail { kind, message } => {
                let mut e = BackendError::new(*kind, service, message.clone())
                    .with_status(status_for(*kind));
                e.applied = self.applied;
                Some(e)
            }
            _ => None,
        }
    }
}

struct Installed {
    rule: FaultRule,
    matched: u64,
    fired: u64,
    rng: ChaCha8Rng,
}

/// The installed rules of a world.
pub(crate) struct FaultTable {
    seed: u64,
    inner: Mutex<(u64, BTreeMap<u64, Installed>)>,
}

impl fmt::Debug for FaultTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultTable").finish_non_exhaustive()
    }
}

impl FaultTable {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            inner: Mutex::new((0, BTreeMap::new())),
        }
    }

    pub(crate) fn install(&self, rule: FaultRule) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        let id = g.0;
        let rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, &format!("fault-rule-{id}")));
        g.1.insert(
            id,
            Installed {
                rule,
                matched: 0,
                fired: 0,
                rng,
            },
        );
        id
    }

    pub(crate) fn remove(&self, id: u64) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .remove(&id);
    }

    pub(crate) fn fired(&self, id: u64) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(&id)
            .map_or(0, |r| r.fired)
    }

    /// The verdict of the first rule that fires for this call, if any.
    pub(crate) fn decide(&self, site: SimSite, kind: CallKind) -> Option<Decision> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for installed in g.1.values_mut() {
            if !installed.rule.selects(site, kind) {
                continue;
            }
            installed.matched += 1;
            if installed.rule.nth.is_some_and(|n| n != installed.matched) {
                continue;
            }
            if installed.rule.times.is_some_and(|t| installed.fired >= t) {
                continue;
            }
            if let Some(p) = installed.rule.probability {
                if !installed.rng.random_bool(p) {
                    continue;
                }
            }
            installed.fired += 1;
            return Some(Decision {
                verdict: installed.rule.verdict.clone(),
                applied: installed.rule.applied,
            });
        }
        None
    }
}

/// Keeps a fault rule installed; dropping it removes the rule.
#[must_use = "the rule is removed when the guard is dropped"]
pub struct FaultGuard {
    table: Arc<FaultTable>,
    id: u64,
}

impl FaultGuard {
    pub(crate) fn new(table: Arc<FaultTable>, id: u64) -> Self {
        Self { table, id }
    }

    /// How many calls the rule has decided so far.
    pub fn fired(&self) -> u64 {
        self.table.fired(self.id)
    }
}

impl fmt::Debug for FaultGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultGuard")
            .field("rule", &self.id)
            .finish()
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        self.table.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_selects_only_that_matching_call() {
        let t = FaultTable::new(1);
        t.install(FaultRule::hang().on_call(CallKind::GetServer).nth(2));
        assert!(t.decide(SimSite::A, CallKind::ListServers).is_none());
        assert!(t.decide(SimSite::A, CallKind::GetServer).is_none());
        assert!(t.decide(SimSite::A, CallKind::GetServer).is_some());
        assert!(t.decide(SimSite::A, CallKind::GetServer).is_none());
    }

    #[test]
    fn first_firing_rule_decides() {
        let t = FaultTable::new(1);
        t.install(FaultRule::pass().on_site(SimSite::B));
        t.install(FaultRule::hang());
        assert_eq!(
            t.decide(SimSite::B, CallKind::GetServer).map(|d| d.verdict),
            Some(Verdict::Pass)
        );
        assert_eq!(
            t.decide(SimSite::A, CallKind::GetServer).map(|d| d.verdict),
            Some(Verdict::Hang)
        );
    }
}
