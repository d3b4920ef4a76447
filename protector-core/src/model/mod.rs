//! The domain model. Serde names are exactly the product's documented names.

pub mod mappings;
pub use mappings::{parse_mapping, parse_mappings, DirectionalMappings, ResourceMappings};
pub mod operation;
pub use operation::{
    FailoverType, JournalEntry, JournalEvent, Operation, OperationFilter, OperationParameters,
    OperationStatus, OperationType, PgRef, ResourceRef,
};
pub mod policy;
pub use policy::{MaskedPolicy, ReplicationPolicy, MASKED};
pub mod protection_group;
pub use protection_group::{
    Member, MemberNetwork, MemberStatus, MemberVolume, PgStatus, ProtectionGroup,
    ReplicationType, SiteBinding, StaleResources, TestResources,
};
pub mod site;
pub use site::{Site, SiteCredentials, SiteStatus};
pub mod sync;
pub use sync::{SyncState, SyncStatus, SyncStatusValue};
