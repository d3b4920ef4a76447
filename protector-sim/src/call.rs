//! What a simulated call is: the service it reaches and its kind.
//!
//! Every call through the simulator — Nova, Cinder, Neutron, Keystone or a FlashArray —
//! is named by a [`CallKind`]. The kind selects the latency class of the
//! [`crate::LatencyProfile`], is the key of call accounting ([`crate::CallStats`]) and one
//! of the selectors of fault rules ([`crate::FaultRule`]).

use std::fmt;

use protector_core::Service;

/// One kind of call, named after the API operation it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CallKind {
    /// Keystone `POST /v3/auth/tokens`.
    IssueToken,
    /// Keystone `HEAD /v3/auth/tokens`: a token holder asks whether its token is still
    /// valid (a connector's probe while its token is cached).
    ValidateToken,
    /// Nova `GET /servers/{id}`.
    GetServer,
    /// Nova `GET /servers/detail`.
    ListServers,
    /// Nova `POST /servers` (boot from volume).
    CreateServer,
    /// Nova `os-stop`.
    StopServer,
    /// Nova `os-start`.
    StartServer,
    /// Nova `DELETE /servers/{id}`.
    DeleteServer,
    /// Nova `GET /flavors/detail`.
    ListFlavors,
    /// Cinder `GET /volumes/{id}`.
    GetVolume,
    /// Cinder `GET /volumes/detail`.
    ListVolumes,
    /// Cinder `POST /manageable_volumes`.
    ManageVolume,
    /// Cinder `os-unmanage`.
    UnmanageVolume,
    /// Cinder `DELETE /volumes/{id}`.
    DeleteVolume,
    /// Cinder `GET /types`.
    ListVolumeTypes,
    /// Cinder `GET /os-services`.
    ListVolumeServices,
    /// Cinder `POST /groups`.
    CreateGroup,
    /// Cinder `GET /groups/{id}`.
    GetGroup,
    /// Cinder `PUT /groups/{id}`.
    UpdateGroup,
    /// Cinder `POST /groups/{id}/action` `delete`.
    DeleteGroup,
    /// Neutron `GET /v2.0/networks/{id}`.
    GetNetwork,
    /// Neutron `GET /v2.0/networks`.
    ListNetworks,
    /// A FlashArray REST call, named after the `FlashArray` trait method
    /// (`"copy_volume"`, `"create_pg_snapshot"`, …).
    Array(&'static str),
}

/// The FlashArray call that starts a replication transfer (a protection-group snapshot
/// with `replicate_now`); it holds a replication slot for the transfer time.
pub const REPLICATE_CALL: &str = "create_pg_snapshot";

impl CallKind {
    /// The service the call reaches.
    pub fn service(self) -> Service {
        match self {
            Self::IssueToken | Self::ValidateToken => Service::Identity,
            Self::GetServer
            | Self::ListServers
            | Self::CreateServer
            | Self::StopServer
            | Self::StartServer
            | Self::DeleteServer
            | Self::ListFlavors => Service::Compute,
            Self::GetVolume
            | Self::ListVolumes
            | Self::ManageVolume
            | Self::UnmanageVolume
            | Self::DeleteVolume
            | Self::ListVolumeTypes
            | Self::ListVolumeServices
            | Self::CreateGroup
            | Self::GetGroup
            | Self::UpdateGroup
            | Self::DeleteGroup => Service::BlockStorage,
            Self::GetNetwork | Self::ListNetworks => Service::Network,
            Self::Array(_) => Service::FlashArray,
        }
    }

    /// The latency class of the call in a [`crate::LatencyProfile`].
    pub fn class(self) -> LatencyClass {
        match self {
            Self::IssueToken => LatencyClass::Token,
            Self::CreateServer => LatencyClass::Boot,
            Self::StopServer | Self::StartServer => LatencyClass::Power,
            Self::DeleteServer => LatencyClass::ServerDelete,
            Self::ManageVolume => LatencyClass::Manage,
            Self::UnmanageVolume | Self::DeleteVolume => LatencyClass::UnmanageDelete,
            Self::Array(REPLICATE_CALL) => LatencyClass::Replicate,
            Self::Array(_) => LatencyClass::ArrayRest,
            Self::ValidateToken
            | Self::GetServer
            | Self::ListServers
            | Self::ListFlavors
            | Self::GetVolume
            | Self::ListVolumes
            | Self::ListVolumeTypes
            | Self::ListVolumeServices
            | Self::CreateGroup
            | Self::GetGroup
            | Self::UpdateGroup
            | Self::DeleteGroup
            | Self::GetNetwork
            | Self::ListNetworks => LatencyClass::Api,
        }
    }

    /// The call's name as it appears in accounting and the event log.
    pub fn name(self) -> &'static str {
        match self {
            Self::IssueToken => "issue_token",
            Self::ValidateToken => "validate_token",
            Self::GetServer => "get_server",
            Self::ListServers => "list_servers",
            Self::CreateServer => "create_server",
            Self::StopServer => "stop_server",
            Self::StartServer => "start_server",
            Self::DeleteServer => "delete_server",
            Self::ListFlavors => "list_flavors",
            Self::GetVolume => "get_volume",
            Self::ListVolumes => "list_volumes",
            Self::ManageVolume => "manage_volume",
            Self::UnmanageVolume => "unmanage_volume",
            Self::DeleteVolume => "delete_volume",
            Self::ListVolumeTypes => "list_volume_types",
            Self::ListVolumeServices => "list_volume_services",
            Self::CreateGroup => "create_group",
            Self::GetGroup => "get_group",
            Self::UpdateGroup => "update_group",
            Self::DeleteGroup => "delete_group",
            Self::GetNetwork => "get_network",
            Self::ListNetworks => "list_networks",
            Self::Array(name) => name,
        }
    }
}

impl fmt::Display for CallKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A row of the latency table: calls of one class share a latency and, per site and
/// service, a concurrency limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LatencyClass {
    /// Keystone token issue.
    Token,
    /// Any GET or list, and the other plain API calls (groups), of Nova, Cinder, Neutron;
    /// a Keystone token validation.
    Api,
    /// Nova stop → `SHUTOFF` (and start → `ACTIVE`).
    Power,
    /// Nova boot from volume → `ACTIVE`; the server holds a boot slot for the latency.
    Boot,
    /// Nova delete → gone.
    ServerDelete,
    /// Cinder manage → `available`.
    Manage,
    /// Cinder unmanage or delete → gone.
    UnmanageDelete,
    /// A FlashArray REST call (including copy and clone).
    ArrayRest,
    /// FlashArray replicate-now until the snapshot has landed on the target.
    Replicate,
}

impl LatencyClass {
    /// Every class, in table order.
    pub const ALL: [LatencyClass; 9] = [
        Self::Token,
        Self::Api,
        Self::Power,
        Self::Boot,
        Self::ServerDelete,
        Self::Manage,
        Self::UnmanageDelete,
        Self::ArrayRest,
        Self::Replicate,
    ];

    /// Whether the latency runs after the call has answered (the service accepted the
    /// request with 202 and the resource changes state later) rather than inside it.
    pub fn is_background(self) -> bool {
        matches!(
            self,
            Self::Power
                | Self::Boot
                | Self::ServerDelete
                | Self::Manage
                | Self::UnmanageDelete
                | Self::Replicate
        )
    }

    /// The class's position in [`Self::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Token => 0,
            Self::Api => 1,
            Self::Power => 2,
            Self::Boot => 3,
            Self::ServerDelete => 4,
            Self::Manage => 5,
            Self::UnmanageDelete => 6,
            Self::ArrayRest => 7,
            Self::Replicate => 8,
        }
    }

    /// A short description, as in the design's table.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Token => "Keystone token",
            Self::Api => "any GET / list (Nova, Cinder, Neutron)",
            Self::Power => "Nova stop → SHUTOFF",
            Self::Boot => "Nova boot from volume → ACTIVE",
            Self::ServerDelete => "Nova delete",
            Self::Manage => "Cinder manage → available",
            Self::UnmanageDelete => "Cinder unmanage / delete",
            Self::ArrayRest => "FlashArray REST call (incl. copy/clone)",
            Self::Replicate => "FlashArray replicate-now, snapshot landed on target",
        }
    }
}

impl fmt::Display for LatencyClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_calls_are_rest_calls_except_replication() {
        assert_eq!(
            CallKind::Array("copy_volume").class(),
            LatencyClass::ArrayRest
        );
        assert_eq!(
            CallKind::Array(REPLICATE_CALL).class(),
            LatencyClass::Replicate
        );
        assert_eq!(
            CallKind::Array("copy_volume").service(),
            Service::FlashArray
        );
        assert_eq!(CallKind::ManageVolume.service(), Service::BlockStorage);
    }

    #[test]
    fn a_class_index_is_its_position_in_the_table() {
        for (i, class) in LatencyClass::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), i, "{class:?}");
        }
    }
}
