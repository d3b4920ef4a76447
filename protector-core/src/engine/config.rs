//! Engine configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ports::WaitPolicy;
use crate::progress::StepId;

/// Concurrency limits of fan-out inside steps, per service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcurrencyLimits {
    /// Concurrent Nova calls (boots, stops, deletes) per site.
    pub compute: usize,
    /// Concurrent Cinder calls (manage, delete) per site.
    pub block_storage: usize,
    /// Concurrent array calls (promote, destroy).
    pub storage: usize,
}

impl Default for ConcurrencyLimits {
    /// Matches the per-site limits of a typical deployment: 20 boots, 10 manages and 20
    /// array calls in flight.
    fn default() -> Self {
        Self {
            compute: 50,
            block_storage: 10,
            storage: 20,
        }
    }
}

/// How the engine runs operations. Build with [`EngineConfig::builder`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Timeout per step; steps not listed use `default_step_timeout`.
    pub step_timeouts: BTreeMap<StepId, Duration>,
    /// Timeout of a step without its own entry.
    pub default_step_timeout: Duration,
    /// Polling of server waits (ACTIVE, SHUTOFF, deleted).
    pub server_wait: WaitPolicy,
    /// Polling of volume waits (available, deleted).
    pub volume_wait: WaitPolicy,
    /// How long a forced replication may take to land on the target.
    pub replication_timeout: Duration,
    /// Fan-out limits.
    pub concurrency: ConcurrencyLimits,
    /// How long undoing one resource during rollback may take before the rollback moves
    /// on and reports it (a hung service must not hang the rollback).
    pub rollback_timeout: Duration,
    /// How long one call to a site's Keystone, Nova, Cinder or Neutron may go without
    /// an answer before it fails as a transient error naming the service and the call
    /// (see [`crate::ports::deadline`]). Bounds pre-flight checks and management calls,
    /// which have no step timeout; should exceed the clients' own request timeout and
    /// retries.
    pub call_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            step_timeouts: BTreeMap::new(),
            default_step_timeout: Duration::from_secs(3600),
            server_wait: WaitPolicy::new(Duration::from_secs(600)),
            volume_wait: WaitPolicy::new(Duration::from_secs(600)),
            replication_timeout: Duration::from_secs(1800),
            concurrency: ConcurrencyLimits::default(),
            rollback_timeout: Duration::from_secs(900),
            call_timeout: Duration::from_secs(600),
        }
    }
}

impl EngineConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> EngineConfigBuilder {
        EngineConfigBuilder {
            config: Self::default(),
        }
    }

    /// The timeout of `step`.
    pub fn step_timeout(&self, step: StepId) -> Duration {
        self.step_timeouts
            .get(&step)
            .copied()
            .unwrap_or(self.default_step_timeout)
    }
}

/// Builder of [`EngineConfig`].
#[derive(Clone, Debug)]
pub struct EngineConfigBuilder {
    config: EngineConfig,
}

/// A configuration value that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid engine configuration: {0}")]
pub struct ConfigError(pub String);

impl EngineConfigBuilder {
    /// Sets the timeout of one step.
    pub fn step_timeout(mut self, step: StepId, timeout: Duration) -> Self {
        self.config.step_timeouts.insert(step, timeout);
        self
    }

    /// Sets the timeout of steps without their own.
    pub fn default_step_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_step_timeout = timeout;
        self
    }

    /// Sets server polling.
    pub fn server_wait(mut self, wait: WaitPolicy) -> Self {
        self.config.server_wait = wait;
        self
    }

    /// Sets volume polling.
    pub fn volume_wait(mut self, wait: WaitPolicy) -> Self {
        self.config.volume_wait = wait;
        self
    }

    /// Sets the forced-replication timeout.
    pub fn replication_timeout(mut self, timeout: Duration) -> Self {
        self.config.replication_timeout = timeout;
        self
    }

    /// Sets fan-out limits.
    pub fn concurrency(mut self, limits: ConcurrencyLimits) -> Self {
        self.config.concurrency = limits;
        self
    }

    /// Sets the per-resource rollback timeout.
    pub fn rollback_timeout(mut self, timeout: Duration) -> Self {
        self.config.rollback_timeout = timeout;
        self
    }

    /// Sets the per-call deadline of site services.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.config.call_timeout = timeout;
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    /// [`ConfigError`] for a zero limit or a zero timeout.
    pub fn build(self) -> Result<EngineConfig, ConfigError> {
        let c = &self.config.concurrency;
        if c.compute == 0 || c.block_storage == 0 || c.storage == 0 {
            return Err(ConfigError("concurrency limits must be at least 1".into()));
        }
        if self.config.default_step_timeout.is_zero()
            || self.config.step_timeouts.values().any(Duration::is_zero)
        {
            return Err(ConfigError("step timeouts must be positive".into()));
        }
        if self.config.rollback_timeout.is_zero() {
            return Err(ConfigError("the rollback timeout must be positive".into()));
        }
        if self.config.replication_timeout.is_zero() {
            return Err(ConfigError(
                "the replication timeout must be positive".into(),
            ));
        }
        if self.config.call_timeout.is_zero() {
            return Err(ConfigError("the call timeout must be positive".into()));
        }
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_zero_limits_and_timeouts() {
        assert!(EngineConfig::builder()
            .concurrency(ConcurrencyLimits {
                compute: 0,
                ..ConcurrencyLimits::default()
            })
            .build()
            .is_err());
        assert!(EngineConfig::builder()
            .step_timeout(StepId::Prepare, Duration::ZERO)
            .build()
            .is_err());
        assert!(EngineConfig::builder()
            .call_timeout(Duration::ZERO)
            .build()
            .is_err());
        let c = EngineConfig::builder()
            .step_timeout(StepId::Prepare, Duration::from_secs(5))
            .build()
            .unwrap();
        assert_eq!(c.step_timeout(StepId::Prepare), Duration::from_secs(5));
        assert_eq!(c.step_timeout(StepId::Finalize), Duration::from_secs(3600));
    }
}
