//! The async shell every simulated call passes through: accounting, the event log,
//! downed sites, fault rules, latency and per-site-per-service concurrency limits.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use protector_core::{Applied, BackendError, Service};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::call::{CallKind, LatencyClass};
use crate::events::EventLog;
use crate::fault::{FaultTable, Verdict};
use crate::profile::LatencyProfile;
use crate::site::SimSite;
use crate::stats::Accounting;

/// The outcome of admitting a call.
pub(crate) struct Admitted {
    /// An error to report after the call has taken effect (a lost answer).
    pub(crate) after: Option<BackendError>,
}

impl Admitted {
    /// The call's result, or the lost-answer error when a rule asked for one.
    pub(crate) fn finish<T>(self, result: Result<T, BackendError>) -> Result<T, BackendError> {
        match (result, self.after) {
            (Ok(_), Some(e)) => Err(e),
            (r, _) => r,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) profile: LatencyProfile,
    pub(crate) faults: Arc<FaultTable>,
    pub(crate) stats: Accounting,
    pub(crate) log: Arc<EventLog>,
    /// The profile's concurrency limit of each class, by [`LatencyClass::index`] (the
    /// profile is fixed for the gate's life; this spares a map lookup per call).
    limits: [usize; LatencyClass::ALL.len()],
    pools: Mutex<BTreeMap<(SimSite, Service, LatencyClass), Arc<Semaphore>>>,
    /// Whether each site's OpenStack APIs are down, by [`SimSite::index`]: read by every
    /// call, set only by the world's verbs.
    down: [AtomicBool; 2],
}

impl Gate {
    pub(crate) fn new(
        profile: LatencyProfile,
        faults: Arc<FaultTable>,
        log: Arc<EventLog>,
    ) -> Self {
        Self {
            limits: LatencyClass::ALL.map(|class| profile.limit(class)),
            profile,
            faults,
            stats: Accounting::new(),
            log,
            pools: Mutex::new(BTreeMap::new()),
            down: [AtomicBool::new(false), AtomicBool::new(false)],
        }
    }

    pub(crate) fn set_site_down(&self, site: SimSite, down: bool) {
        self.down[site.index()].store(down, Ordering::SeqCst);
    }

    pub(crate) fn is_site_down(&self, site: SimSite) -> bool {
        self.down[site.index()].load(Ordering::SeqCst)
    }

    fn pool(&self, site: SimSite, kind: CallKind) -> Option<Arc<Semaphore>> {
        let class = kind.class();
        let limit = self.limits[class.index()];
        if limit == 0 {
            return None;
        }
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            pools
                .entry((site, kind.service(), class))
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone(),
        )
    }

    /// Waits for a slot of the call's class on that site and service.
    pub(crate) async fn slot(&self, site: SimSite, kind: CallKind) -> Option<OwnedSemaphorePermit> {
        match self.pool(site, kind) {
            // The semaphores are never closed, so acquiring only fails if they were.
            Some(sem) => sem.acquire_owned().await.ok(),
            None => None,
        }
    }

    /// Counts and logs the call, refuses it when its site is down (OpenStack services
    /// only), and applies the first fault rule that fires.
    pub(crate) async fn admit(
        &self,
        site: SimSite,
        kind: CallKind,
    ) -> Result<Admitted, BackendError> {
        self.stats.count(site, kind);
        self.log.record_call(site, kind);
        let service = kind.service();
        if service != Service::FlashArray && self.is_site_down(site) {
            self.log
                .record(Some(site), format_args!("refused {kind}: site down"));
            return Err(site_unreachable(site, service));
        }
        let Some(decision) = self.faults.decide(site, kind) else {
            return Ok(Admitted { after: None });
        };
        match &decision.verdict {
            Verdict::Pass => Ok(Admitted { after: None }),
            Verdict::Delay(d) => {
                self.log.record(
                    Some(site),
                    format_args!("fault delay {kind} {}ms", d.as_millis()),
                );
                tokio::time::sleep(*d).await;
                Ok(Admitted { after: None })
            }
            Verdict::Hang => {
                self.log
                    .record(Some(site), format_args!("fault hang {kind}"));
                std::future::pending::<()>().await;
                Ok(Admitted { after: None })
            }
            Verdict::Fail { kind: ek, .. } => {
                self.log
                    .record(Some(site), format_args!("fault fail {kind} {ek:?}"));
                let err = decision
                    .error(service)
                    .unwrap_or_else(|| site_unreachable(site, service));
                if decision.applied == Applied::Maybe && service != Service::FlashArray {
                    Ok(Admitted { after: Some(err) })
                } else {
                    Err(err)
                }
            }
        }
    }

    /// A foreground call: admitted, then it holds a slot for the class's latency.
    pub(crate) async fn foreground(
        &self,
        site: SimSite,
        kind: CallKind,
    ) -> Result<Admitted, BackendError> {
        let admitted = self.admit(site, kind).await?;
        let permit = self.slot(site, kind).await;
        let latency = self.profile.call_latency(kind);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        drop(permit);
        Ok(admitted)
    }

    /// Runs `complete` after the class's latency, holding one of its slots meanwhile.
    pub(crate) fn background<F>(self: &Arc<Self>, site: SimSite, kind: CallKind, complete: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let gate = Arc::clone(self);
        tokio::spawn(async move {
            let permit = gate.slot(site, kind).await;
            let latency = gate.profile.call_latency(kind);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            complete.await;
            drop(permit);
        });
    }
}

/// The error of a call to a downed site: the connection is refused, nothing applied.
pub(crate) fn site_unreachable(site: SimSite, service: Service) -> BackendError {
    BackendError::unreachable(
        service,
        format!("Unable to establish connection to {service} on {site}: connection refused"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_gate_keeps_each_class_limit_of_its_profile() {
        let profile =
            LatencyProfile::zero().with_class(LatencyClass::Manage, Duration::from_millis(5), 3);
        let gate = Gate::new(
            profile.clone(),
            Arc::new(FaultTable::new(1)),
            Arc::new(EventLog::new()),
        );
        for class in LatencyClass::ALL {
            assert_eq!(
                gate.limits[class.index()],
                profile.limit(class),
                "{class:?}"
            );
        }
        assert_eq!(gate.limits[LatencyClass::Manage.index()], 3);
        assert!(gate.pool(SimSite::A, CallKind::ManageVolume).is_some());
        assert!(gate.pool(SimSite::A, CallKind::GetVolume).is_none());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_site_is_down_from_the_verb_until_it_is_brought_up() {
        let gate = Gate::new(
            LatencyProfile::zero(),
            Arc::new(FaultTable::new(1)),
            Arc::new(EventLog::new()),
        );
        gate.set_site_down(SimSite::B, true);
        assert!(gate.is_site_down(SimSite::B) && !gate.is_site_down(SimSite::A));
        gate.set_site_down(SimSite::B, false);
        assert!(!gate.is_site_down(SimSite::B));
    }
}
