//! Durable stores: operation records with their journals, and protection-group metadata.
//!
//! Two implementations pass one contract test suite: [`MemoryStore`] (tests,
//! benchmarks) and [`SqliteStore`] (the embedded default: one file per site, WAL,
//! versioned schema, crash-safe).

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ids::{OperationId, ProjectId, ProtectionGroupId, SiteId};
use crate::model::{
    JournalEntry, JournalEvent, Operation, OperationFilter, ProtectionGroup, ReplicationPolicy,
    Site, SyncState,
};

/// A protection group's stored document, encoded at most once however many stores
/// write the group ([`MetadataStore::put_protection_group_shared`]): the group's own
/// document and, for stores that keep members apart, each member's. Start each write
/// of a changed group with a new, empty one.
#[derive(Debug, Default)]
pub struct GroupDocument {
    header: std::sync::OnceLock<String>,
    /// One slot per member, by position; made on the first member encoded.
    members: std::sync::OnceLock<Box<[std::sync::OnceLock<Box<str>>]>>,
}

impl GroupDocument {
    /// The document, made by `encode` on first use.
    ///
    /// # Errors
    /// What `encode` returns (nothing is kept then: the next use encodes again).
    pub fn get_or_encode<E>(&self, encode: impl FnOnce() -> Result<String, E>) -> Result<&str, E> {
        if let Some(d) = self.header.get() {
            return Ok(d);
        }
        let d = encode()?;
        Ok(self.header.get_or_init(|| d))
    }

    /// The document of the member at `position` of a group of `count` members, made
    /// by `encode` on first use. A position out of range, or a `count` other than the
    /// first use's, is encoded each time and not kept.
    ///
    /// # Errors
    /// What `encode` returns (nothing is kept then: the next use encodes again).
    pub fn member_or_encode<E>(
        &self,
        position: usize,
        count: usize,
        encode: impl FnOnce() -> Result<String, E>,
    ) -> Result<std::borrow::Cow<'_, str>, E> {
        let slots = self.members.get_or_init(|| {
            std::iter::repeat_with(std::sync::OnceLock::new)
                .take(count)
                .collect()
        });
        let Some(slot) = slots.get(position).filter(|_| slots.len() == count) else {
            return encode().map(std::borrow::Cow::Owned);
        };
        if let Some(d) = slot.get() {
            return Ok(std::borrow::Cow::Borrowed(d));
        }
        let d = encode()?.into_boxed_str();
        Ok(std::borrow::Cow::Borrowed(slot.get_or_init(|| d)))
    }
}

/// Operation records (`dr_operations`) and their journals.
#[async_trait]
pub trait OperationStore: Send + Sync {
    /// Inserts a new record; `AlreadyExists` if the id is taken.
    async fn insert_operation(&self, op: &Operation) -> Result<(), StoreError>;
    /// Replaces an existing record; `NotFound` if it does not exist.
    async fn update_operation(&self, op: &Operation) -> Result<(), StoreError>;
    /// One record.
    async fn get_operation(&self, id: &OperationId) -> Result<Option<Operation>, StoreError>;
    /// Records matching the filter, newest (`created_at`) first. A
    /// [`crate::model::PgRef::Name`] filter matches the group's name as stored in the
    /// metadata store of the same backend.
    async fn list_operations(&self, filter: &OperationFilter)
        -> Result<Vec<Operation>, StoreError>;
    /// Appends to an operation's journal; returns the entry with its sequence number.
    async fn append_journal(
        &self,
        id: &OperationId,
        at: chrono::DateTime<chrono::Utc>,
        event: JournalEvent,
    ) -> Result<JournalEntry, StoreError>;
    /// Appends several events to an operation's journal, in order, atomically where the
    /// store has transactions: when it returns `Ok`, every event is stored (one commit
    /// for the batch); on an error, none is. Returns the entries with their sequence
    /// numbers. The default appends one by one.
    async fn append_journal_batch(
        &self,
        id: &OperationId,
        events: Vec<(chrono::DateTime<chrono::Utc>, JournalEvent)>,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let mut out = Vec::with_capacity(events.len());
        for (at, event) in events {
            out.push(self.append_journal(id, at, event).await?);
        }
        Ok(out)
    }
    /// The journal of an operation, in order.
    async fn journal(&self, id: &OperationId) -> Result<Vec<JournalEntry>, StoreError>;
}

/// Sites, protection groups (with members and mappings), policies and sync state.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Inserts or replaces a site, credentials included.
    async fn put_site(&self, site: &Site) -> Result<(), StoreError>;
    /// One site by id, credentials included.
    async fn get_site(&self, id: &SiteId) -> Result<Option<Site>, StoreError>;
    /// All sites, by name.
    async fn list_sites(&self) -> Result<Vec<Site>, StoreError>;
    /// Deletes a site; `NotFound` if missing.
    async fn delete_site(&self, id: &SiteId) -> Result<(), StoreError>;

    /// Inserts or replaces a protection group. Inserting a second group with the same
    /// name in the same project is `AlreadyExists`.
    async fn put_protection_group(&self, pg: &ProtectionGroup) -> Result<(), StoreError>;
    /// [`MetadataStore::put_protection_group`] of a shared group: a store that keeps
    /// the group it last wrote keeps `pg` itself rather than a copy, and a store that
    /// stores the group as a document takes it from `document`, so a group written to
    /// several stores is encoded once. The default writes a copy of `pg`.
    async fn put_protection_group_shared(
        &self,
        pg: Arc<ProtectionGroup>,
        document: &GroupDocument,
    ) -> Result<(), StoreError> {
        let _ = document;
        self.put_protection_group(&pg).await
    }
    /// One group by id.
    async fn get_protection_group(
        &self,
        id: &ProtectionGroupId,
    ) -> Result<Option<ProtectionGroup>, StoreError>;
    /// One group by id, shared: a store that keeps the group it last read or wrote
    /// hands out that copy instead of building a new one (groups of thousands of
    /// members are read at every step of an operation). The default wraps
    /// [`MetadataStore::get_protection_group`].
    async fn get_protection_group_shared(
        &self,
        id: &ProtectionGroupId,
    ) -> Result<Option<Arc<ProtectionGroup>>, StoreError> {
        Ok(self.get_protection_group(id).await?.map(Arc::new))
    }
    /// Groups of a project (all projects when `None`), by name.
    async fn list_protection_groups(
        &self,
        project: Option<&ProjectId>,
    ) -> Result<Vec<ProtectionGroup>, StoreError>;
    /// Ids of the groups named `name` in a project (all projects when `None`), by
    /// project. The default filters [`MetadataStore::list_protection_groups`]; a store
    /// that can look names up without reading whole groups should.
    async fn protection_group_ids_named(
        &self,
        project: Option<&ProjectId>,
        name: &str,
    ) -> Result<Vec<ProtectionGroupId>, StoreError> {
        let mut groups: Vec<ProtectionGroup> = self
            .list_protection_groups(project)
            .await?
            .into_iter()
            .filter(|pg| pg.name == name)
            .collect();
        groups.sort_by(|a, b| a.project_id.cmp(&b.project_id).then(a.id.cmp(&b.id)));
        Ok(groups.into_iter().map(|pg| pg.id).collect())
    }
    /// Deletes a group with its policy and sync state; `NotFound` if missing.
    async fn delete_protection_group(&self, id: &ProtectionGroupId) -> Result<(), StoreError>;

    /// Inserts or replaces the policy of a group, tokens included.
    async fn put_policy(&self, policy: &ReplicationPolicy) -> Result<(), StoreError>;
    /// The policy of a group, tokens included.
    async fn get_policy(
        &self,
        pg: &ProtectionGroupId,
    ) -> Result<Option<ReplicationPolicy>, StoreError>;

    /// Inserts or replaces the sync state of a group.
    async fn put_sync_state(&self, state: &SyncState) -> Result<(), StoreError>;
    /// The sync state of a group.
    async fn get_sync_state(&self, pg: &ProtectionGroupId)
        -> Result<Option<SyncState>, StoreError>;
}

pub mod memory;
pub use memory::MemoryStore;
pub mod sqlite;
pub use sqlite::SqliteStore;

#[cfg(test)]
mod contract;

#[cfg(test)]
mod tests {
    use super::GroupDocument;

    #[test]
    fn a_group_document_encodes_its_header_once() {
        let d = GroupDocument::default();
        assert_eq!(d.get_or_encode(|| Ok::<_, ()>("h".to_owned())), Ok("h"));
        assert_eq!(d.get_or_encode(|| Ok::<_, ()>("other".to_owned())), Ok("h"));
    }

    #[test]
    fn a_group_document_encodes_each_member_once() {
        let d = GroupDocument::default();
        let first = d.member_or_encode(1, 3, || Ok::<_, ()>("m1".to_owned()));
        assert_eq!(first.as_deref(), Ok("m1"));
        // Kept: a later use does not encode again.
        let again = d.member_or_encode(1, 3, || Ok::<_, ()>("changed".to_owned()));
        assert_eq!(again.as_deref(), Ok("m1"));
        assert!(matches!(again, Ok(std::borrow::Cow::Borrowed(_))));
        // Other positions are their own.
        let other = d.member_or_encode(0, 3, || Ok::<_, ()>("m0".to_owned()));
        assert_eq!(other.as_deref(), Ok("m0"));
    }

    #[test]
    fn a_failed_member_encoding_is_not_kept() {
        let d = GroupDocument::default();
        assert_eq!(
            d.member_or_encode(0, 1, || Err::<String, _>("no")),
            Err("no")
        );
        let later = d.member_or_encode(0, 1, || Ok::<_, &str>("m0".to_owned()));
        assert_eq!(later.as_deref(), Ok("m0"));
    }

    #[test]
    fn members_of_another_count_or_out_of_range_are_encoded_each_time() {
        let d = GroupDocument::default();
        let _ = d.member_or_encode(0, 2, || Ok::<_, ()>("m0".to_owned()));
        let other_count = d.member_or_encode(0, 5, || Ok::<_, ()>("fresh".to_owned()));
        assert_eq!(other_count.as_deref(), Ok("fresh"));
        assert!(matches!(other_count, Ok(std::borrow::Cow::Owned(_))));
        let beyond = d.member_or_encode(7, 2, || Ok::<_, ()>("beyond".to_owned()));
        assert_eq!(beyond.as_deref(), Ok("beyond"));
        let kept = d.member_or_encode(0, 2, || Ok::<_, ()>("unused".to_owned()));
        assert_eq!(kept.as_deref(), Ok("m0"));
    }
}
