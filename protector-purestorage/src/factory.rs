//! [`PureDriverFactory`]: a [`PureDriver`] per replication policy, over REST clients
//! built from the policy's array URLs and API tokens and shared per URL.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use protector_core::model::ReplicationPolicy;
use protector_core::ports::{StorageDriver, StorageDriverFactory};
use protector_core::{BackendError, Clock, IdGenerator, Service};

use crate::client::FlashArrayClient;
use crate::driver::{PureDriver, PureDriverOptions};
use crate::retry::RetryPolicy;

/// How the factory builds clients and drivers.
#[derive(Clone, Debug, Default)]
pub struct FactoryOptions {
    /// Accept any array certificate (self-signed arrays); default `false`.
    pub accept_invalid_certs: bool,
    /// Extra CAs to trust (PEM).
    pub root_certificates: Vec<Vec<u8>>,
    /// Retry policy of every client.
    pub retry: RetryPolicy,
    /// Per-request timeout; `None` keeps the client's default (60 s).
    pub request_timeout: Option<Duration>,
    /// Settings of every driver.
    pub driver: PureDriverOptions,
}

struct Cached {
    token: SecretString,
    client: Arc<FlashArrayClient>,
}

/// Builds [`PureDriver`]s for replication policies; one REST client (and so one
/// session) per array URL, rebuilt when the policy's token for it changes.
pub struct PureDriverFactory {
    clock: Arc<dyn Clock>,
    ids: Arc<IdGenerator>,
    options: FactoryOptions,
    clients: Mutex<BTreeMap<String, Cached>>,
}

impl fmt::Debug for PureDriverFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self
            .clients
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("PureDriverFactory")
            .field("options", &self.options)
            .field("arrays", &urls)
            .finish_non_exhaustive()
    }
}

impl PureDriverFactory {
    /// A factory stamping time with `clock` and drawing request ids from `ids`.
    pub fn new(clock: Arc<dyn Clock>, ids: Arc<IdGenerator>, options: FactoryOptions) -> Self {
        Self {
            clock,
            ids,
            options,
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    /// The client for `url`, cached.
    ///
    /// # Errors
    /// [`BackendError`] of kind `Invalid` when the URL or TLS settings are unusable.
    pub fn client(
        &self,
        url: &str,
        token: &SecretString,
    ) -> Result<Arc<FlashArrayClient>, BackendError> {
        let key = url.trim().trim_end_matches('/').to_owned();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            if c.token.expose_secret() == token.expose_secret() {
                return Ok(c.client.clone());
            }
        }
        let mut builder = FlashArrayClient::builder(key.clone(), token.clone())
            .accept_invalid_certs(self.options.accept_invalid_certs)
            .retry_policy(self.options.retry.clone())
            .id_generator(self.ids.clone());
        for pem in &self.options.root_certificates {
            builder = builder.add_root_certificate_pem(pem.clone());
        }
        if let Some(t) = self.options.request_timeout {
            builder = builder.request_timeout(t);
        }
        let client = Arc::new(
            builder
                .build()
                .map_err(|e| BackendError::invalid(Service::FlashArray, e.to_string()))?,
        );
        clients.insert(
            key,
            Cached {
                token: token.clone(),
                client: client.clone(),
            },
        );
        Ok(client)
    }
}

impl StorageDriverFactory for PureDriverFactory {
    fn driver(&self, policy: &ReplicationPolicy) -> Result<Arc<dyn StorageDriver>, BackendError> {
        let primary = self.client(&policy.primary_fa_url, &policy.primary_fa_api_token)?;
        let secondary = self.client(&policy.secondary_fa_url, &policy.secondary_fa_api_token)?;
        Ok(Arc::new(PureDriver::new(
            primary,
            secondary,
            self.clock.clone(),
            self.options.driver.clone(),
        )))
    }
}
