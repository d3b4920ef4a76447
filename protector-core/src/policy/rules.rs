//! The names of every rule protector enforces or builds on, so no caller spells them.
//!
//! The `protector:*` names are the ones operators write in `/etc/protector/policy.yaml`;
//! [`super::defaults`] gives each its default.

/// Who counts as a cloud administrator: `role:admin`.
pub const CONTEXT_IS_ADMIN: &str = "context_is_admin";
/// An admin, or a caller in the project that owns the target:
/// `is_admin:True or project_id:%(project_id)s`.
pub const ADMIN_OR_OWNER: &str = "admin_or_owner";
/// The rule enforced for names that are not defined at all: `rule:admin_or_owner`.
pub const DEFAULT: &str = "default";
/// Administrators only: `is_admin:True`.
pub const ADMIN_API: &str = "admin_api";

/// List DR operations (`operation list`).
pub const OPERATIONS_INDEX: &str = "protector:operations:index";
/// Show one DR operation (`operation show`).
pub const OPERATIONS_SHOW: &str = "protector:operations:show";
/// Act on a DR operation.
pub const OPERATIONS_ACTION: &str = "protector:operations:action";

/// Register a site (`site register`).
pub const SITES_CREATE: &str = "protector:sites:create";
/// List sites (`site list`).
pub const SITES_INDEX: &str = "protector:sites:index";
/// Show a site (`site show`).
pub const SITES_SHOW: &str = "protector:sites:show";
/// Change a site's URL or credentials.
pub const SITES_UPDATE: &str = "protector:sites:update";
/// Delete a site.
pub const SITES_DELETE: &str = "protector:sites:delete";
/// Check a site's connectivity and capabilities (`site validate`).
pub const SITES_VALIDATE: &str = "protector:sites:validate";
/// List a site's replication-capable volume types.
pub const SITES_VOLUME_TYPES: &str = "protector:sites:volume_types";
/// Fail over every protection group whose current primary is a given site.
pub const SITES_FAILOVER: &str = "protector:sites:failover";

/// Create a tenant mapping between the two sites.
pub const TENANT_MAPPINGS_CREATE: &str = "protector:tenant_mappings:create";
/// List tenant mappings.
pub const TENANT_MAPPINGS_INDEX: &str = "protector:tenant_mappings:index";
/// Show a tenant mapping.
pub const TENANT_MAPPINGS_SHOW: &str = "protector:tenant_mappings:show";
/// Delete a tenant mapping.
pub const TENANT_MAPPINGS_DELETE: &str = "protector:tenant_mappings:delete";

/// Create a protection group (`protection-group create`).
pub const PROTECTION_GROUPS_CREATE: &str = "protector:protection_groups:create";
/// List protection groups (`protection-group list`).
pub const PROTECTION_GROUPS_INDEX: &str = "protector:protection_groups:index";
/// Show a protection group (`protection-group show`).
pub const PROTECTION_GROUPS_SHOW: &str = "protector:protection_groups:show";
/// Change a protection group's name, description or mappings.
pub const PROTECTION_GROUPS_UPDATE: &str = "protector:protection_groups:update";
/// Delete a protection group (`protection-group delete`).
pub const PROTECTION_GROUPS_DELETE: &str = "protector:protection_groups:delete";
/// Fail a protection group over (`protection-group failover`).
pub const PROTECTION_GROUPS_FAILOVER: &str = "protector:protection_groups:failover";
/// Fail a protection group back (`protection-group failback`).
pub const PROTECTION_GROUPS_FAILBACK: &str = "protector:protection_groups:failback";
/// Start a DR drill (`protection-group test-failover`).
pub const PROTECTION_GROUPS_TEST_FAILOVER: &str = "protector:protection_groups:test_failover";
/// Remove a DR drill's resources (`protection-group test-cleanup`).
pub const PROTECTION_GROUPS_TEST_CLEANUP: &str = "protector:protection_groups:test_cleanup";
/// Replicate a protection group's volumes now (`consistency-group sync`).
pub const PROTECTION_GROUPS_SYNC_VOLUMES: &str = "protector:protection_groups:sync_volumes";
/// Show the metadata sync status (`protection-group sync-status`).
pub const PROTECTION_GROUPS_SYNC_STATUS: &str = "protector:protection_groups:sync_status";
/// Push the local metadata to the peer site (`protection-group sync-force`).
pub const PROTECTION_GROUPS_SYNC_FORCE: &str = "protector:protection_groups:sync_force";

/// Add a VM to a protection group (`protection-group member-add`).
pub const MEMBERS_CREATE: &str = "protector:members:create";
/// List a protection group's members.
pub const MEMBERS_INDEX: &str = "protector:members:index";
/// Remove a VM from a protection group (`protection-group member-remove`).
pub const MEMBERS_DELETE: &str = "protector:members:delete";

/// Create a protection group's replication policy (`protection-group policy-create`).
pub const POLICIES_CREATE: &str = "protector:policies:create";
/// Show a replication policy (`protection-group policy-show`).
pub const POLICIES_SHOW: &str = "protector:policies:show";
/// Change a replication policy.
pub const POLICIES_UPDATE: &str = "protector:policies:update";

/// Read replication health reports.
pub const HEALTH_SHOW: &str = "protector:health:show";
