//! In-memory store.
//!
//! [`MemoryStore`] keeps every record in ordered maps behind one mutex. It is the
//! store of unit tests, simulations and benchmarks, where durability does not matter
//! but determinism does.
//!
//! # Guarantees
//! - The same semantics as [`super::SqliteStore`]: both pass the shared contract suite
//!   (duplicate keys, missing records, listing order, filters, journal sequencing,
//!   protection-group name uniqueness, cascading deletes).
//! - Deterministic iteration: records live in `BTreeMap`s, and every listing is sorted
//!   on explicit keys, so two runs with the same inputs see the same order.
//! - Records are kept whole, secrets included: a site read back carries its
//!   credentials, a policy its API tokens.
//! - Clones share one state (an `Arc` inside), so a handle can be given to several
//!   components.
//!
//! # Caveats
//! - Nothing survives the process.
//! - The mutex is a `std::sync::Mutex` held only for synchronous map operations, never
//!   across an `.await`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MetadataStore, OperationStore};
use crate::error::StoreError;
use crate::ids::{OperationId, ProjectId, ProtectionGroupId, SiteId};
use crate::model::{
    JournalEntry, JournalEvent, Operation, OperationFilter, PgRef, ProtectionGroup,
    ReplicationPolicy, Site, SyncState,
};

/// Operation and metadata store held in memory.
///
/// ```
/// use protector_core::store::{MemoryStore, OperationStore};
/// use protector_core::model::OperationFilter;
///
/// # futures::executor::block_on(async {
/// let store = MemoryStore::new();
/// let ops = store.list_operations(&OperationFilter::default()).await.unwrap();
/// assert!(ops.is_empty());
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    operations: BTreeMap<OperationId, Operation>,
    journals: BTreeMap<OperationId, Vec<JournalEntry>>,
    sites: BTreeMap<SiteId, Site>,
    groups: BTreeMap<ProtectionGroupId, ProtectionGroup>,
    policies: BTreeMap<ProtectionGroupId, ReplicationPolicy>,
    sync_states: BTreeMap<ProtectionGroupId, SyncState>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a handful of map operations that cannot leave the
        // maps half-updated, so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("MemoryStore")
            .field("operations", &state.operations.len())
            .field("sites", &state.sites.len())
            .field("protection_groups", &state.groups.len())
            .field("policies", &state.policies.len())
            .finish_non_exhaustive()
    }
}

fn operation_key(id: &OperationId) -> String {
    format!("operation {id}")
}

fn group_key(id: &ProtectionGroupId) -> String {
    format!("protection group {id}")
}

impl State {
    /// Ids of the groups a [`PgRef`] names (several when the name is used in more
    /// than one project).
    fn resolve(&self, pg: &PgRef) -> BTreeSet<ProtectionGroupId> {
        match pg {
            PgRef::Id(id) => BTreeSet::from([id.clone()]),
            PgRef::Name(name) => self
                .groups
                .values()
                .filter(|g| &g.name == name)
                .map(|g| g.id.clone())
                .collect(),
        }
    }

    fn require_group(&self, id: &ProtectionGroupId) -> Result<(), StoreError> {
        if self.groups.contains_key(id) {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                what: group_key(id),
            })
        }
    }
}

#[async_trait]
impl OperationStore for MemoryStore {
    async fn insert_operation(&self, op: &Operation) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.operations.contains_key(&op.id) {
            return Err(StoreError::AlreadyExists {
                what: operation_key(&op.id),
            });
        }
        state.operations.insert(op.id.clone(), op.clone());
        Ok(())
    }

    async fn update_operation(&self, op: &Operation) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.operations.get_mut(&op.id) {
            Some(slot) => {
                *slot = op.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound {
                what: operation_key(&op.id),
            }),
        }
    }

    async fn get_operation(&self, id: &OperationId) -> Result<Option<Operation>, StoreError> {
        Ok(self.lock().operations.get(id).cloned())
    }

    async fn list_operations(
        &self,
        filter: &OperationFilter,
    ) -> Result<Vec<Operation>, StoreError> {
        let state = self.lock();
        let groups = filter.protection_group.as_ref().map(|pg| state.resolve(pg));
        let mut ops: Vec<&Operation> = state
            .operations
            .values()
            .filter(|op| {
                filter
                    .project_id
                    .as_ref()
                    .is_none_or(|p| &op.project_id == p)
                    && groups
                        .as_ref()
                        .is_none_or(|ids| ids.contains(&op.protection_group_id))
                    && filter.status.is_none_or(|s| op.status == s)
                    && filter.operation_type.is_none_or(|t| op.operation_type == t)
            })
            .collect();
        // Newest first; the id breaks ties so the order never depends on insertion.
        ops.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        let limit = filter.limit.unwrap_or(usize::MAX);
        Ok(ops.into_iter().take(limit).cloned().collect())
    }

    async fn append_journal(
        &self,
        id: &OperationId,
        at: DateTime<Utc>,
        event: JournalEvent,
    ) -> Result<JournalEntry, StoreError> {
        let mut state = self.lock();
        if !state.operations.contains_key(id) {
            return Err(StoreError::NotFound {
                what: operation_key(id),
            });
        }
        let journal = state.journals.entry(id.clone()).or_default();
        let entry = JournalEntry {
            operation_id: id.clone(),
            seq: u64::try_from(journal.len()).unwrap_or(u64::MAX),
            at,
            event,
        };
        journal.push(entry.clone());
        Ok(entry)
    }

    async fn journal(&self, id: &OperationId) -> Result<Vec<JournalEntry>, StoreError> {
        Ok(self.lock().journals.get(id).cloned().unwrap_or_default())
    }
}

#[async_trait]
impl MetadataStore for MemoryStore {
    async fn put_site(&self, site: &Site) -> Result<(), StoreError> {
        self.lock().sites.insert(site.id.clone(), site.clone());
        Ok(())
    }

    async fn get_site(&self, id: &SiteId) -> Result<Option<Site>, StoreError> {
        Ok(self.lock().sites.get(id).cloned())
    }

    async fn list_sites(&self) -> Result<Vec<Site>, StoreError> {
        let state = self.lock();
        let mut sites: Vec<Site> = state.sites.values().cloned().collect();
        sites.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(sites)
    }

    async fn delete_site(&self, id: &SiteId) -> Result<(), StoreError> {
        match self.lock().sites.remove(id) {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound {
                what: format!("site {id}"),
            }),
        }
    }

    async fn put_protection_group(&self, pg: &ProtectionGroup) -> Result<(), StoreError> {
        let mut state = self.lock();
        let taken = state
            .groups
            .values()
            .any(|g| g.id != pg.id && g.project_id == pg.project_id && g.name == pg.name);
        if taken {
            return Err(StoreError::AlreadyExists {
                what: format!(
                    "protection group named '{}' in project {}",
                    pg.name, pg.project_id
                ),
            });
        }
        state.groups.insert(pg.id.clone(), pg.clone());
        Ok(())
    }

    async fn get_protection_group(
        &self,
        id: &ProtectionGroupId,
    ) -> Result<Option<ProtectionGroup>, StoreError> {
        Ok(self.lock().groups.get(id).cloned())
    }

    async fn list_protection_groups(
        &self,
        project: Option<&ProjectId>,
    ) -> Result<Vec<ProtectionGroup>, StoreError> {
        let state = self.lock();
        let mut groups: Vec<ProtectionGroup> = state
            .groups
            .values()
            .filter(|g| project.is_none_or(|p| &g.project_id == p))
            .cloned()
            .collect();
        groups.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| a.project_id.cmp(&b.project_id))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(groups)
    }

    async fn delete_protection_group(&self, id: &ProtectionGroupId) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.groups.remove(id).is_none() {
            return Err(StoreError::NotFound {
                what: group_key(id),
            });
        }
        state.policies.remove(id);
        state.sync_states.remove(id);
        Ok(())
    }

    async fn put_policy(&self, policy: &ReplicationPolicy) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.require_group(&policy.protection_group_id)?;
        state
            .policies
            .insert(policy.protection_group_id.clone(), policy.clone());
        Ok(())
    }

    async fn get_policy(
        &self,
        pg: &ProtectionGroupId,
    ) -> Result<Option<ReplicationPolicy>, StoreError> {
        Ok(self.lock().policies.get(pg).cloned())
    }

    async fn put_sync_state(&self, sync: &SyncState) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.require_group(&sync.protection_group_id)?;
        state
            .sync_states
            .insert(sync.protection_group_id.clone(), sync.clone());
        Ok(())
    }

    async fn get_sync_state(
        &self,
        pg: &ProtectionGroupId,
    ) -> Result<Option<SyncState>, StoreError> {
        Ok(self.lock().sync_states.get(pg).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SiteCredentials, SiteStatus};
    use secrecy::SecretString;

    fn site_with_password(password: &str) -> Site {
        Site {
            id: SiteId::new("site-a"),
            name: "site-a".to_owned(),
            description: String::new(),
            auth_url: "https://keystone.site-a.example:5000/v3".to_owned(),
            region_name: None,
            interface: None,
            cloud: None,
            status: SiteStatus::Active,
            credentials: SiteCredentials {
                username: Some("dr-admin".to_owned()),
                password: Some(SecretString::from(password.to_owned())),
                ..SiteCredentials::default()
            },
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            last_validated_at: None,
        }
    }

    #[tokio::test]
    async fn clones_of_a_memory_store_share_their_records() {
        let store = MemoryStore::new();
        let other = store.clone();
        store
            .put_site(&site_with_password("hunter2"))
            .await
            .unwrap();
        let sites = other.list_sites().await.unwrap();
        assert_eq!(sites.len(), 1);
        assert_eq!(sites[0].id, SiteId::new("site-a"));
    }

    #[tokio::test]
    async fn memory_store_debug_output_shows_counts_not_secrets() {
        let store = MemoryStore::new();
        store
            .put_site(&site_with_password("correct-horse-battery"))
            .await
            .unwrap();
        let shown = format!("{store:?}");
        assert!(shown.contains("sites: 1"), "{shown}");
        assert!(!shown.contains("correct-horse-battery"), "{shown}");
    }
}
