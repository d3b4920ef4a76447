//! One site's OpenStack cloud as a plain synchronous state machine.
//!
//! Everything here is maps and pure transitions; no time, no I/O, no locks. The
//! async shells ([`super::nova`], [`super::cinder`], [`super::neutron`]) add latency,
//! faults and background completion, and carry array side effects to the fabric.
//! Texts of errors and faults are those of the real services.

use std::collections::{BTreeMap, HashMap, HashSet};

use protector_core::ids::{
    FlavorId, GroupId, ImageId, NetworkId, PortId, ProjectId, ServerId, UserId, VolumeId,
    VolumeTypeId,
};
use protector_core::ports::{
    BlockDevice, Flavor, Network, Server, ServerAddress, ServerCreate, ServerState, ServerStatus,
    Volume, VolumeAttachment, VolumeGroup, VolumeService, VolumeStatus, VolumeType,
};
use protector_core::{BackendError, BackendErrorKind, IdGenerator, Service};

use crate::events::push_u64;
use crate::hash::{FixedHash, SortedHashMap};

/// A Keystone project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectInfo {
    /// Id (tenants are mapped to the same id on both sites).
    pub id: ProjectId,
    /// Name (the same on both sites).
    pub name: String,
}

/// A Keystone user with its role assignments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// Id (the same on both sites, as the tenant mapping has it).
    pub id: UserId,
    /// Name (the same on both sites).
    pub name: String,
    /// Role names per project.
    pub roles: BTreeMap<ProjectId, Vec<String>>,
}

/// A Glance image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Id (differs per site).
    pub id: ImageId,
    /// Name (the same on both sites).
    pub name: String,
}

/// Who is calling, as resolved from a request context (whose ids it borrows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caller<'a> {
    pub(crate) user_id: &'a UserId,
    pub(crate) project_id: &'a ProjectId,
    pub(crate) admin: bool,
}

/// What a server is doing in the background.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    Spawning,
    PoweringOff,
    PoweringOn,
    Deleting,
}

#[derive(Clone, Debug)]
pub(crate) struct ServerRec {
    pub(crate) server: Server,
    pub(crate) task: Option<Task>,
    /// Attached volumes with `delete_on_termination`.
    pub(crate) devices: Vec<(VolumeId, bool)>,
}

#[derive(Clone, Debug)]
pub(crate) struct NetworkRec {
    pub(crate) network: Network,
    pub(crate) cidr_prefix: String,
    pub(crate) next_host: u32,
}

/// The state of a pending manage, kept until the background completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingManage {
    pub(crate) source_name: String,
}

/// One site's cloud.
#[derive(Debug)]
pub(crate) struct CloudState {
    pub(crate) ids: IdGenerator,
    pub(crate) projects: BTreeMap<ProjectId, ProjectInfo>,
    pub(crate) users: BTreeMap<UserId, UserInfo>,
    pub(crate) networks: BTreeMap<NetworkId, NetworkRec>,
    pub(crate) flavors: BTreeMap<FlavorId, Flavor>,
    pub(crate) images: BTreeMap<ImageId, ImageInfo>,
    pub(crate) volume_types: BTreeMap<VolumeTypeId, VolumeType>,
    pub(crate) group_types: BTreeMap<String, String>,
    pub(crate) services: Vec<VolumeService>,
    pub(crate) backend_host: String,
    /// Servers by id (listed in id order).
    pub(crate) servers: SortedHashMap<ServerId, ServerRec>,
    /// Volumes by id (listed in id order).
    pub(crate) volumes: SortedHashMap<VolumeId, Volume>,
    /// Manages awaiting their completion (looked up by volume id only, never listed).
    pub(crate) pending_manage: HashMap<VolumeId, PendingManage, FixedHash>,
    /// Array volume names that back a Cinder volume here (an index of `volumes`,
    /// looked up by name only, never listed).
    pub(crate) backing: HashSet<String, FixedHash>,
    pub(crate) groups: BTreeMap<GroupId, (VolumeGroup, ProjectId)>,
    pub(crate) manage_allowed: bool,
    /// Users who are not admins see only the extra specs Cinder shows them.
    pub(crate) filter_member_specs: bool,
}

/// A change to the array the shell must carry out after a transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ArrayEffect {
    /// Start or stop the write sequence of an array volume.
    Writing { volume: String, writing: bool },
    /// Rename an array volume.
    Rename { from: String, to: String },
    /// Destroy (soft-delete) an array volume.
    Destroy { volume: String },
}

fn nova(kind: BackendErrorKind, status: u16, msg: impl Into<String>) -> BackendError {
    BackendError::new(kind, Service::Compute, msg).with_status(status)
}

fn cinder(kind: BackendErrorKind, status: u16, msg: impl Into<String>) -> BackendError {
    BackendError::new(kind, Service::BlockStorage, msg).with_status(status)
}

pub(crate) fn instance_not_found(id: &ServerId) -> BackendError {
    nova(
        BackendErrorKind::NotFound,
        404,
        format!("Instance {id} could not be found."),
    )
}

pub(crate) fn volume_not_found(id: &VolumeId) -> BackendError {
    cinder(
        BackendErrorKind::NotFound,
        404,
        format!("Volume {id} could not be found."),
    )
}

/// Cinder's policy refusal text.
pub(crate) fn policy_refusal(rule: &str) -> BackendError {
    cinder(
        BackendErrorKind::Forbidden,
        403,
        format!("Policy doesn't allow {rule} to be performed."),
    )
}

/// The Pure driver's array-side name for a Cinder volume.
pub fn pure_volume_name(id: &VolumeId) -> String {
    format!("volume-{id}-cinder")
}

const DELETABLE: [&str; 6] = [
    "available",
    "error",
    "error_restoring",
    "error_extending",
    "error_managing",
    "error_deleting",
];

impl CloudState {
    pub(crate) fn new(ids: IdGenerator) -> Self {
        Self {
            ids,
            projects: BTreeMap::new(),
            users: BTreeMap::new(),
            networks: BTreeMap::new(),
            flavors: BTreeMap::new(),
            images: BTreeMap::new(),
            volume_types: BTreeMap::new(),
            group_types: BTreeMap::new(),
            services: Vec::new(),
            backend_host: String::new(),
            servers: SortedHashMap::new(),
            volumes: SortedHashMap::new(),
            pending_manage: HashMap::default(),
            backing: HashSet::default(),
            groups: BTreeMap::new(),
            manage_allowed: true,
            filter_member_specs: false,
        }
    }

    // ---------------------------------------------------------------- identity

    /// Resolves a request context: the user must exist and hold a role on the project.
    pub(crate) fn caller<'a>(
        &self,
        user: &'a UserId,
        project: &'a ProjectId,
    ) -> Result<Caller<'a>, BackendError> {
        let roles = self
            .users
            .get(user)
            .and_then(|u| u.roles.get(project))
            .filter(|_| self.projects.contains_key(project));
        match roles {
            Some(roles) => Ok(Caller {
                user_id: user,
                project_id: project,
                admin: roles.iter().any(|r| r.eq_ignore_ascii_case("admin")),
            }),
            None => Err(BackendError::new(
                BackendErrorKind::Auth,
                Service::Identity,
                "The request you have made requires authentication.",
            )
            .with_status(401)),
        }
    }

    pub(crate) fn project_by_name(&self, name: &str) -> Option<&ProjectInfo> {
        self.projects.values().find(|p| p.name == name)
    }

    pub(crate) fn user_by_name(&self, name: &str) -> Option<&UserInfo> {
        self.users.values().find(|u| u.name == name)
    }

    fn sees(caller: &Caller, owner: &ProjectId) -> bool {
        caller.admin || caller.project_id == owner
    }

    // ---------------------------------------------------------------- nova

    /// The server `id` if `caller` may see it.
    fn visible_server(&self, caller: &Caller, id: &ServerId) -> Result<&Server, BackendError> {
        self.servers
            .get(id)
            .filter(|s| Self::sees(caller, &s.server.project_id))
            .map(|s| &s.server)
            .ok_or_else(|| instance_not_found(id))
    }

    pub(crate) fn get_server(
        &self,
        caller: &Caller,
        id: &ServerId,
    ) -> Result<Server, BackendError> {
        self.visible_server(caller, id).cloned()
    }

    /// [`Self::get_server`] without copying the whole record.
    pub(crate) fn get_server_state(
        &self,
        caller: &Caller,
        id: &ServerId,
    ) -> Result<ServerState, BackendError> {
        self.visible_server(caller, id).map(ServerState::from)
    }

    pub(crate) fn list_servers(&self, caller: &Caller) -> Vec<Server> {
        self.servers
            .values()
            .filter(|s| Self::sees(caller, &s.server.project_id))
            .map(|s| s.server.clone())
            .collect()
    }

    pub(crate) fn list_flavors(&self) -> Vec<Flavor> {
        self.flavors.values().cloned().collect()
    }

    /// Accepts a boot request. The server is returned in `BUILD` (the caller schedules
    /// [`Self::finish_boot`]) or, when Nova would refuse the build, in `ERROR` with
    /// Nova's fault message.
    pub(crate) fn create_server(&mut self, caller: &Caller, req: &ServerCreate) -> Server {
        let id: ServerId = self.ids.next();
        let flavor_name = self.flavors.get(&req.flavor_id).map(|f| f.name.clone());
        let fault = self.boot_fault(caller, req, flavor_name.is_some());
        let mut addresses = Vec::with_capacity(if fault.is_none() {
            req.networks.len()
        } else {
            0
        });
        if fault.is_none() {
            for nic in &req.networks {
                if let Some(net) = self.networks.get_mut(&nic.network_id) {
                    let ip = nic.fixed_ip.clone().unwrap_or_else(|| {
                        net.next_host += 1;
                        let mut ip = String::with_capacity(net.cidr_prefix.len() + 4);
                        ip.push_str(&net.cidr_prefix);
                        ip.push('.');
                        push_u64(&mut ip, u64::from(net.next_host));
                        ip
                    });
                    let port: PortId = self.ids.next();
                    addresses.push(ServerAddress {
                        network_id: nic.network_id.clone(),
                        network_name: net.network.name.clone(),
                        fixed_ip: Some(ip),
                        port_id: Some(port),
                    });
                }
            }
        }
        // Nova attaches the volumes in boot order (unindexed ones last, in request order).
        let resorted;
        let devices: &[BlockDevice] = if req.block_devices.is_sorted_by_key(boot_order) {
            &req.block_devices
        } else {
            let mut sorted = req.block_devices.clone();
            sorted.sort_by_key(boot_order);
            resorted = sorted;
            &resorted
        };
        let attached: Vec<(VolumeId, bool)> = if fault.is_some() {
            Vec::new()
        } else {
            devices
                .iter()
                .map(|d| (d.volume_id.clone(), d.delete_on_termination))
                .collect()
        };
        let server = Server {
            id: id.clone(),
            name: req.name.clone(),
            status: if fault.is_some() {
                ServerStatus::Error
            } else {
                ServerStatus::Build
            },
            project_id: caller.project_id.clone(),
            flavor_id: req.flavor_id.clone(),
            flavor_name,
            image_id: None,
            addresses,
            security_groups: if req.security_groups.is_empty() {
                vec!["default".to_owned()]
            } else {
                req.security_groups.clone()
            },
            key_name: req.key_name.clone(),
            metadata: req.metadata.clone(),
            availability_zone: Some(
                req.availability_zone
                    .clone()
                    .unwrap_or_else(|| "nova".to_owned()),
            ),
            volumes_attached: attached.iter().map(|(v, _)| v.clone()).collect(),
            fault,
        };
        let task = server.fault.is_none().then_some(Task::Spawning);
        for (vid, _) in &attached {
            if let Some(v) = self.volumes.get_mut(vid) {
                v.status = VolumeStatus::Other("reserved".to_owned());
                v.attachments = vec![VolumeAttachment {
                    server_id: id.clone(),
                    device: None,
                }];
            }
        }
        self.servers.insert(
            id,
            ServerRec {
                server: server.clone(),
                task,
                devices: attached,
            },
        );
        server
    }

    fn boot_fault(
        &self,
        caller: &Caller,
        req: &ServerCreate,
        flavor_known: bool,
    ) -> Option<String> {
        if !flavor_known {
            return Some(format!("Flavor {} could not be found.", req.flavor_id));
        }
        for nic in &req.networks {
            let visible = self.networks.get(&nic.network_id).is_some_and(|n| {
                caller.admin
                    || n.network.shared
                    || n.network.project_id.as_ref() == Some(caller.project_id)
            });
            if !visible {
                return Some(format!("Network {} could not be found.", nic.network_id));
            }
        }
        let boots = req
            .block_devices
            .iter()
            .filter(|d| d.boot_index == Some(0))
            .count();
        if boots != 1 {
            return Some("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.".to_owned());
        }
        for dev in &req.block_devices {
            let Some(vol) = self
                .volumes
                .get(&dev.volume_id)
                .filter(|v| v.project_id.as_ref().is_some_and(|p| Self::sees(caller, p)))
            else {
                return Some(format!(
                    "Block Device Mapping is Invalid: failed to get volume {}.",
                    dev.volume_id
                ));
            };
            if vol.status != VolumeStatus::Available {
                return Some(format!(
                    "Invalid volume: Volume {} status must be available or downloading to reserve, but the current status is {}.",
                    vol.id, vol.status
                ));
            }
            if dev.boot_index == Some(0) && !vol.bootable {
                return Some(format!("Block Device {} is not bootable.", vol.id));
            }
        }
        None
    }

    fn writing_effects(
        volumes: &SortedHashMap<VolumeId, Volume>,
        devices: &[(VolumeId, bool)],
        writing: bool,
    ) -> Vec<ArrayEffect> {
        devices
            .iter()
            .filter_map(|(vid, _)| volumes.get(vid))
            .filter_map(|v| v.array_volume_name().map(str::to_owned))
            .map(|volume| ArrayEffect::Writing { volume, writing })
            .collect()
    }

    /// `BUILD` → `ACTIVE`: the volumes become `in-use` and start being written.
    /// `None` when the server is no longer building (deleted meanwhile).
    pub(crate) fn finish_boot(&mut self, id: &ServerId) -> Option<Vec<ArrayEffect>> {
        let rec = self.servers.get_mut(id)?;
        if rec.task != Some(Task::Spawning) {
            return None;
        }
        rec.task = None;
        rec.server.status = ServerStatus::Active;
        for (vid, _) in &rec.devices {
            if let Some(v) = self.volumes.get_mut(vid) {
                v.status = VolumeStatus::InUse;
            }
        }
        Some(Self::writing_effects(&self.volumes, &rec.devices, true))
    }

    /// `os-stop`: `Ok(true)` when a power-off starts, `Ok(false)` when already stopped
    /// or stopping.
    pub(crate) fn request_stop(
        &mut self,
        caller: &Caller,
        id: &ServerId,
    ) -> Result<bool, BackendError> {
        let rec = self
            .servers
            .get_mut(id)
            .filter(|s| Self::sees(caller, &s.server.project_id))
            .ok_or_else(|| instance_not_found(id))?;
        match (&rec.server.status, rec.task) {
            (_, Some(Task::Deleting)) => Err(nova(
                BackendErrorKind::Conflict,
                409,
                format!("Cannot 'stop' instance {id} while it is in task_state deleting"),
            )),
            (ServerStatus::Shutoff, _) | (_, Some(Task::PoweringOff)) => Ok(false),
            (ServerStatus::Active | ServerStatus::Error, None) => {
                rec.task = Some(Task::PoweringOff);
                Ok(true)
            }
            (status, _) => Err(nova(
                BackendErrorKind::Conflict,
                409,
                format!(
                    "Cannot 'stop' instance {id} while it is in vm_state {}",
                    vm_state(status)
                ),
            )),
        }
    }

    /// Power-off done: `SHUTOFF`, writes stop.
    pub(crate) fn finish_stop(&mut self, id: &ServerId) -> Vec<ArrayEffect> {
        let Some(rec) = self.servers.get_mut(id) else {
            return Vec::new();
        };
        if rec.task != Some(Task::PoweringOff) {
            return Vec::new();
        }
        rec.task = None;
        rec.server.status = ServerStatus::Shutoff;
        Self::writing_effects(&self.volumes, &rec.devices, false)
    }

    /// `os-start`: `Ok(true)` when a power-on starts, `Ok(false)` when already running.
    pub(crate) fn request_start(
        &mut self,
        caller: &Caller,
        id: &ServerId,
    ) -> Result<bool, BackendError> {
        let rec = self
            .servers
            .get_mut(id)
            .filter(|s| Self::sees(caller, &s.server.project_id))
            .ok_or_else(|| instance_not_found(id))?;
        match (&rec.server.status, rec.task) {
            (ServerStatus::Active, None) | (_, Some(Task::PoweringOn)) => Ok(false),
            (ServerStatus::Shutoff, None) => {
                rec.task = Some(Task::PoweringOn);
                Ok(true)
            }
            (status, _) => Err(nova(
                BackendErrorKind::Conflict,
                409,
                format!(
                    "Cannot 'start' instance {id} while it is in vm_state {}",
                    vm_state(status)
                ),
            )),
        }
    }

    /// Power-on done: `ACTIVE`, writes resume.
    pub(crate) fn finish_start(&mut self, id: &ServerId) -> Vec<ArrayEffect> {
        let Some(rec) = self.servers.get_mut(id) else {
            return Vec::new();
        };
        if rec.task != Some(Task::PoweringOn) {
            return Vec::new();
        }
        rec.task = None;
        rec.server.status = ServerStatus::Active;
        Self::writing_effects(&self.volumes, &rec.devices, true)
    }

    /// `DELETE /servers/{id}`: `Ok(true)` when the deletion starts; writes stop at once.
    pub(crate) fn request_delete(
        &mut self,
        caller: &Caller,
        id: &ServerId,
    ) -> Result<(bool, Vec<ArrayEffect>), BackendError> {
        let rec = self
            .servers
            .get_mut(id)
            .filter(|s| Self::sees(caller, &s.server.project_id))
            .ok_or_else(|| instance_not_found(id))?;
        if rec.task == Some(Task::Deleting) {
            return Ok((false, Vec::new()));
        }
        rec.task = Some(Task::Deleting);
        Ok((
            true,
            Self::writing_effects(&self.volumes, &rec.devices, false),
        ))
    }

    /// Deletion done: the server is gone; its volumes are detached (`available`), or
    /// deleted with their array volume when `delete_on_termination` was set.
    pub(crate) fn finish_delete(&mut self, id: &ServerId) -> Vec<ArrayEffect> {
        let Some(rec) = self.servers.remove(id) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        for (vid, delete) in rec.devices {
            if delete {
                if let Some(v) = self.forget_volume(&vid) {
                    if let Some(name) = v.array_volume_name() {
                        effects.push(ArrayEffect::Destroy {
                            volume: name.to_owned(),
                        });
                    }
                }
            } else if let Some(v) = self.volumes.get_mut(&vid) {
                v.attachments.clear();
                v.status = VolumeStatus::Available;
            }
        }
        effects
    }

    // ---------------------------------------------------------------- cinder

    pub(crate) fn view_volume(caller: &Caller, v: &Volume) -> Volume {
        // Copies only what the caller sees: admin-only fields stay behind for others.
        let admin_only = |field: &Option<String>| if caller.admin { field.clone() } else { None };
        Volume {
            id: v.id.clone(),
            name: v.name.clone(),
            status: match &v.status {
                VolumeStatus::ErrorManaging => VolumeStatus::Error,
                status => status.clone(),
            },
            size_gb: v.size_gb,
            volume_type: v.volume_type.clone(),
            bootable: v.bootable,
            attachments: v.attachments.clone(),
            metadata: v.metadata.clone(),
            host: admin_only(&v.host),
            provider_id: admin_only(&v.provider_id),
            group_id: v.group_id.clone(),
            project_id: v.project_id.clone(),
        }
    }

    pub(crate) fn get_volume(
        &self,
        caller: &Caller,
        id: &VolumeId,
    ) -> Result<Volume, BackendError> {
        self.volumes
            .get(id)
            .filter(|v| v.project_id.as_ref().is_some_and(|p| Self::sees(caller, p)))
            .map(|v| Self::view_volume(caller, v))
            .ok_or_else(|| volume_not_found(id))
    }

    pub(crate) fn list_volumes(&self, caller: &Caller) -> Vec<Volume> {
        self.volumes
            .values()
            .filter(|v| v.project_id.as_ref().is_some_and(|p| Self::sees(caller, p)))
            .map(|v| Self::view_volume(caller, v))
            .collect()
    }

    pub(crate) fn find_volume_type(&self, id_or_name: &str) -> Option<&VolumeType> {
        self.volume_types
            .values()
            .find(|t| t.id.as_str() == id_or_name || t.name == id_or_name)
    }

    fn host_known(&self, host: &str) -> bool {
        let base = host.split('#').next().unwrap_or(host);
        self.services.iter().any(|s| s.host == base) && (host == base || host == self.backend_host)
    }

    /// Accepts a manage request: synchronous checks as Cinder's API does them; the
    /// array lookup happens in [`Self::finish_manage`].
    pub(crate) fn request_manage(
        &mut self,
        caller: &Caller,
        req: &protector_core::ports::ManageVolume,
    ) -> Result<Volume, BackendError> {
        if !self.manage_allowed {
            return Err(policy_refusal("volume_extension:volume_manage"));
        }
        if !self.host_known(&req.host) {
            return Err(cinder(
                BackendErrorKind::Invalid,
                400,
                format!("Host '{}' not found.", req.host),
            ));
        }
        let vtype = match &req.volume_type {
            Some(t) => Some(
                self.find_volume_type(t)
                    .map(|t| t.name.clone())
                    .ok_or_else(|| {
                        cinder(
                            BackendErrorKind::Invalid,
                            400,
                            format!("Cannot find requested '{t}' volume type"),
                        )
                    })?,
            ),
            None => self
                .volume_types
                .values()
                .find(|t| t.name == "__DEFAULT__")
                .map(|t| t.name.clone()),
        };
        if req.source_name.is_empty() {
            return Err(cinder(
                BackendErrorKind::Invalid,
                400,
                "Manage existing volume failed due to invalid backend reference {}: Must contain source-name.".to_owned(),
            ));
        }
        let id: VolumeId = self.ids.next();
        let vol = Volume {
            id: id.clone(),
            name: req.name.clone(),
            status: VolumeStatus::Creating,
            size_gb: 0,
            volume_type: vtype,
            bootable: req.bootable,
            attachments: Vec::new(),
            metadata: req.metadata.clone(),
            host: Some(self.backend_host.clone()),
            provider_id: None,
            group_id: None,
            project_id: Some(caller.project_id.clone()),
        };
        let view = Self::view_volume(caller, &vol);
        self.volumes.insert(id.clone(), vol);
        self.pending_manage.insert(
            id,
            PendingManage {
                source_name: req.source_name.clone(),
            },
        );
        Ok(view)
    }

    /// Whether an array volume is already the backing volume of a Cinder volume here.
    pub(crate) fn is_managed(&self, array_volume: &str) -> bool {
        self.backing.contains(array_volume)
    }

    /// Adds a volume, indexing its array-side name.
    pub(crate) fn remember_volume(&mut self, v: Volume) {
        if let Some(name) = v.array_volume_name() {
            self.backing.insert(name.to_owned());
        }
        self.volumes.insert(v.id.clone(), v);
    }

    /// Removes a volume and its array-side name from the index.
    pub(crate) fn forget_volume(&mut self, id: &VolumeId) -> Option<Volume> {
        let v = self.volumes.remove(id)?;
        if let Some(name) = v.array_volume_name() {
            self.backing.remove(name);
        }
        Some(v)
    }

    /// Completes a manage. `lookup` is the array's answer for the source volume:
    /// `Ok(size_bytes)` when it exists and is not connected, `Err(reason)` otherwise.
    pub(crate) fn finish_manage(
        &mut self,
        id: &VolumeId,
        array: &str,
        lookup: Result<u64, String>,
    ) -> (Vec<ArrayEffect>, Option<String>) {
        let Some(pending) = self.pending_manage.remove(id) else {
            return (Vec::new(), None);
        };
        let already = self.is_managed(&pending.source_name);
        let Some(v) = self.volumes.get_mut(id) else {
            return (Vec::new(), None);
        };
        let lookup = if already {
            Err(format!(
                "{}: volume is already managed by Cinder",
                pending.source_name
            ))
        } else {
            lookup
        };
        match lookup {
            Ok(bytes) => {
                let new_name = pure_volume_name(id);
                v.size_gb = bytes.div_ceil(1 << 30);
                v.status = VolumeStatus::Available;
                v.provider_id = Some(new_name.clone());
                v.metadata
                    .insert("array_volume_name".to_owned(), new_name.clone());
                v.metadata.insert("array_name".to_owned(), array.to_owned());
                self.backing.insert(new_name.clone());
                (
                    vec![ArrayEffect::Rename {
                        from: pending.source_name,
                        to: new_name,
                    }],
                    None,
                )
            }
            Err(reason) => {
                v.status = VolumeStatus::ErrorManaging;
                (Vec::new(), Some(reason))
            }
        }
    }

    fn check_detached(v: &Volume, action: &str) -> Result<(), BackendError> {
        if !DELETABLE.contains(&v.status.as_str())
            || !v.attachments.is_empty()
            || v.group_id.is_some()
        {
            return Err(cinder(
                BackendErrorKind::Invalid,
                400,
                format!(
                    "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer. ({action} of volume {} in status {})",
                    v.id, v.status
                ),
            ));
        }
        Ok(())
    }

    /// `os-unmanage`: only a detached, group-less volume that is `available`.
    pub(crate) fn request_unmanage(
        &mut self,
        caller: &Caller,
        id: &VolumeId,
    ) -> Result<(), BackendError> {
        let v = self
            .volumes
            .get_mut(id)
            .filter(|v| v.project_id.as_ref().is_some_and(|p| Self::sees(caller, p)))
            .ok_or_else(|| volume_not_found(id))?;
        if v.status != VolumeStatus::Available || !v.attachments.is_empty() || v.group_id.is_some()
        {
            Self::check_detached(v, "unmanage")?;
            if v.status != VolumeStatus::Available {
                return Err(cinder(
                    BackendErrorKind::Invalid,
                    400,
                    format!("Invalid volume: Volume {} status must be available, but current status is: {}.", v.id, v.status),
                ));
            }
        }
        v.status = VolumeStatus::Other("unmanaging".to_owned());
        Ok(())
    }

    /// Unmanage done: Cinder forgets the volume; the array volume is renamed
    /// `<name>-unmanaged` (63 characters at most, as the Pure driver does).
    pub(crate) fn finish_unmanage(&mut self, id: &VolumeId) -> Vec<ArrayEffect> {
        let Some(v) = self.forget_volume(id) else {
            return Vec::new();
        };
        self.pending_manage.remove(id);
        match v.array_volume_name() {
            Some(name) => vec![ArrayEffect::Rename {
                from: name.to_owned(),
                to: unmanaged_name(name),
            }],
            None => Vec::new(),
        }
    }

    /// `DELETE /volumes/{id}`: refused while attached or in a group.
    pub(crate) fn request_delete_volume(
        &mut self,
        caller: &Caller,
        id: &VolumeId,
    ) -> Result<bool, BackendError> {
        let v = self
            .volumes
            .get_mut(id)
            .filter(|v| v.project_id.as_ref().is_some_and(|p| Self::sees(caller, p)))
            .ok_or_else(|| volume_not_found(id))?;
        if v.status == VolumeStatus::Deleting {
            return Ok(false);
        }
        Self::check_detached(v, "delete")?;
        v.status = VolumeStatus::Deleting;
        Ok(true)
    }

    /// Deletion done: the volume is gone and its array volume destroyed.
    pub(crate) fn finish_delete_volume(&mut self, id: &VolumeId) -> Vec<ArrayEffect> {
        let Some(v) = self.forget_volume(id) else {
            return Vec::new();
        };
        let was_pending = self.pending_manage.remove(id).is_some();
        match v.array_volume_name() {
            Some(name) if !was_pending => vec![ArrayEffect::Destroy {
                volume: name.to_owned(),
            }],
            _ => Vec::new(),
        }
    }

    pub(crate) fn list_volume_types(&self, caller: &Caller) -> Vec<VolumeType> {
        let filter = self.filter_member_specs && !caller.admin;
        self.volume_types
            .values()
            .cloned()
            .map(|mut t| {
                if filter {
                    t.extra_specs.retain(|k, _| {
                        protector_core::ports::USER_VISIBLE_EXTRA_SPECS.contains(&k.as_str())
                    });
                }
                t
            })
            .collect()
    }

    pub(crate) fn list_volume_services(
        &self,
        caller: &Caller,
    ) -> Result<Vec<VolumeService>, BackendError> {
        // Sites prepared for protector set `volume_extension:services:index` to
        // `rule:admin_or_owner` (a documented deployment prerequisite), so every
        // authenticated member may list the hosts that manage targets.
        let _ = caller;
        Ok(self.services.clone())
    }

    // ---------------------------------------------------------------- groups

    pub(crate) fn create_group(
        &mut self,
        caller: &Caller,
        req: &protector_core::ports::GroupCreate,
    ) -> Result<VolumeGroup, BackendError> {
        let gtype = self
            .group_types
            .iter()
            .find(|(name, id)| *name == &req.group_type || *id == &req.group_type)
            .map(|(_, id)| id.clone())
            .ok_or_else(|| {
                cinder(
                    BackendErrorKind::NotFound,
                    404,
                    format!("Group type {} could not be found.", req.group_type),
                )
            })?;
        for t in &req.volume_types {
            if !self.volume_types.contains_key(t) {
                return Err(cinder(
                    BackendErrorKind::NotFound,
                    404,
                    format!("Volume type {t} could not be found."),
                ));
            }
        }
        let id: GroupId = self.ids.next();
        let group = VolumeGroup {
            id: id.clone(),
            name: req.name.clone(),
            status: "available".to_owned(),
            group_type: gtype,
            volume_types: req.volume_types.clone(),
            volumes: Vec::new(),
        };
        self.groups
            .insert(id, (group.clone(), caller.project_id.clone()));
        Ok(group)
    }

    fn group_mut(
        &mut self,
        caller: &Caller,
        id: &GroupId,
    ) -> Result<&mut VolumeGroup, BackendError> {
        self.groups
            .get_mut(id)
            .filter(|(_, owner)| Self::sees(caller, owner))
            .map(|(g, _)| g)
            .ok_or_else(|| {
                cinder(
                    BackendErrorKind::NotFound,
                    404,
                    format!("Group {id} could not be found."),
                )
            })
    }

    pub(crate) fn get_group(
        &mut self,
        caller: &Caller,
        id: &GroupId,
    ) -> Result<VolumeGroup, BackendError> {
        self.group_mut(caller, id).map(|g| g.clone())
    }

    pub(crate) fn update_group(
        &mut self,
        caller: &Caller,
        id: &GroupId,
        add: &[VolumeId],
        remove: &[VolumeId],
    ) -> Result<(), BackendError> {
        let types = self.group_mut(caller, id)?.volume_types.clone();
        for vid in add {
            let v = self
                .volumes
                .get(vid)
                .filter(|v| v.project_id.as_ref().is_some_and(|p| Self::sees(caller, p)))
                .ok_or_else(|| volume_not_found(vid))?;
            let type_ok = v
                .volume_type
                .as_deref()
                .and_then(|t| self.find_volume_type(t))
                .is_some_and(|t| types.contains(&t.id));
            if !type_ok {
                return Err(cinder(
                    BackendErrorKind::Invalid,
                    400,
                    format!("Invalid volume: Volume {vid} is not of a volume type supported by group {id}."),
                ));
            }
            if v.group_id.as_ref().is_some_and(|g| g != id) {
                return Err(cinder(
                    BackendErrorKind::Invalid,
                    400,
                    format!("Invalid volume: Volume {vid} already belongs to a group."),
                ));
            }
            if !matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse) {
                return Err(cinder(
                    BackendErrorKind::Invalid,
                    400,
                    format!("Invalid volume: Volume {vid} status must be available or in-use, but is {}.", v.status),
                ));
            }
        }
        for vid in remove {
            let in_group = self
                .volumes
                .get(vid)
                .is_some_and(|v| v.group_id.as_ref() == Some(id));
            if !in_group {
                return Err(cinder(
                    BackendErrorKind::Invalid,
                    400,
                    format!("Invalid volume: Volume {vid} is not in group {id}."),
                ));
            }
        }
        for vid in add {
            if let Some(v) = self.volumes.get_mut(vid) {
                v.group_id = Some(id.clone());
            }
        }
        for vid in remove {
            if let Some(v) = self.volumes.get_mut(vid) {
                v.group_id = None;
            }
        }
        let members: Vec<VolumeId> = self
            .volumes
            .values()
            .filter(|v| v.group_id.as_ref() == Some(id))
            .map(|v| v.id.clone())
            .collect();
        self.group_mut(caller, id)?.volumes = members;
        Ok(())
    }

    /// Deletes a group; with `delete_volumes` its volumes go too (their array volumes
    /// are destroyed), without it the group must be empty.
    pub(crate) fn delete_group(
        &mut self,
        caller: &Caller,
        id: &GroupId,
        delete_volumes: bool,
    ) -> Result<Vec<ArrayEffect>, BackendError> {
        let members = self.group_mut(caller, id)?.volumes.clone();
        if !members.is_empty() && !delete_volumes {
            return Err(cinder(
                BackendErrorKind::Invalid,
                400,
                format!("Invalid group: Group {id} still contains volumes. The delete-volumes flag is required to delete it."),
            ));
        }
        if delete_volumes {
            for vid in &members {
                if let Some(v) = self.volumes.get(vid) {
                    if !v.attachments.is_empty() {
                        return Err(cinder(
                            BackendErrorKind::Invalid,
                            400,
                            format!("Invalid volume: Volume {vid} in group {id} is attached."),
                        ));
                    }
                }
            }
        }
        let mut effects = Vec::new();
        for vid in members {
            if let Some(v) = self.forget_volume(&vid) {
                if let Some(name) = v.array_volume_name() {
                    effects.push(ArrayEffect::Destroy {
                        volume: name.to_owned(),
                    });
                }
            }
        }
        self.groups.remove(id);
        Ok(effects)
    }

    // ---------------------------------------------------------------- neutron

    fn network_visible(caller: &Caller, n: &Network) -> bool {
        caller.admin || n.shared || n.project_id.as_ref() == Some(caller.project_id)
    }

    pub(crate) fn get_network(
        &self,
        caller: &Caller,
        id: &NetworkId,
    ) -> Result<Network, BackendError> {
        self.networks
            .get(id)
            .map(|n| &n.network)
            .filter(|n| Self::network_visible(caller, n))
            .cloned()
            .ok_or_else(|| {
                BackendError::not_found(
                    Service::Network,
                    format!("Network {id} could not be found."),
                )
                .with_status(404)
            })
    }

    pub(crate) fn list_networks(&self, caller: &Caller) -> Vec<Network> {
        self.networks
            .values()
            .map(|n| &n.network)
            .filter(|n| Self::network_visible(caller, n))
            .cloned()
            .collect()
    }
}

/// Where a block device goes in Nova's attach order: by boot index, unindexed last.
fn boot_order(d: &BlockDevice) -> u32 {
    d.boot_index.unwrap_or(u32::MAX)
}

fn vm_state(status: &ServerStatus) -> &'static str {
    match status {
        ServerStatus::Build => "building",
        ServerStatus::Active => "active",
        ServerStatus::Shutoff => "stopped",
        ServerStatus::Error => "error",
        ServerStatus::Deleted => "deleted",
        ServerStatus::Other(_) => "unknown",
    }
}

/// `X` → `X-unmanaged`, truncated to 63 characters as the Pure driver does.
pub fn unmanaged_name(name: &str) -> String {
    let suffix = "-unmanaged";
    let keep = 63usize.saturating_sub(suffix.len());
    let base: String = name.chars().take(keep).collect();
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use protector_core::ports::{ManageVolume, VolumeService};

    use super::*;

    fn cloud() -> (CloudState, Caller<'static>) {
        let mut c = CloudState::new(IdGenerator::seeded(1));
        let project = ProjectId::new("p");
        let user = UserId::new("u");
        c.projects.insert(
            project.clone(),
            ProjectInfo {
                id: project.clone(),
                name: "p".to_owned(),
            },
        );
        let mut roles = BTreeMap::new();
        roles.insert(project.clone(), vec!["member".to_owned()]);
        c.users.insert(
            user.clone(),
            UserInfo {
                id: user.clone(),
                name: "u".to_owned(),
                roles,
            },
        );
        c.services.push(VolumeService {
            host: "h@pure".to_owned(),
            status: "enabled".to_owned(),
            state: "up".to_owned(),
            zone: None,
        });
        c.backend_host = "h@pure#pure".to_owned();
        let user: &'static UserId = Box::leak(Box::new(user));
        let project: &'static ProjectId = Box::leak(Box::new(project));
        let caller = c.caller(user, project).unwrap();
        (c, caller)
    }

    fn manage(source: &str) -> ManageVolume {
        ManageVolume {
            source_name: source.to_owned(),
            host: "h@pure#pure".to_owned(),
            name: "v".to_owned(),
            volume_type: None,
            bootable: false,
            description: None,
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn unmanaged_names_keep_within_sixty_three_characters() {
        assert_eq!(
            unmanaged_name("volume-x-cinder"),
            "volume-x-cinder-unmanaged"
        );
        let long = "v".repeat(70);
        let renamed = unmanaged_name(&long);
        assert_eq!(renamed.len(), 63);
        assert!(renamed.ends_with("-unmanaged"));
    }

    #[test]
    fn a_failed_manage_is_error_managing_inside_and_error_to_clients() {
        let (mut c, caller) = cloud();
        let v = c.request_manage(&caller, &manage("gone")).unwrap();
        let (effects, reason) = c.finish_manage(
            &v.id,
            "array-a",
            Err("gone: Volume does not exist.".to_owned()),
        );
        assert!(effects.is_empty());
        assert_eq!(reason.as_deref(), Some("gone: Volume does not exist."));
        assert_eq!(c.volumes[&v.id].status, VolumeStatus::ErrorManaging);
        assert_eq!(
            c.get_volume(&caller, &v.id).unwrap().status,
            VolumeStatus::Error
        );
    }

    #[test]
    fn a_second_manage_of_the_same_source_is_refused_once_the_first_owns_it() {
        let (mut c, caller) = cloud();
        let first = c.request_manage(&caller, &manage("src")).unwrap();
        let (effects, _) = c.finish_manage(&first.id, "array-a", Ok(1 << 30));
        let owned = pure_volume_name(&first.id);
        assert_eq!(
            effects,
            vec![ArrayEffect::Rename {
                from: "src".to_owned(),
                to: owned.clone()
            }]
        );
        assert!(c.is_managed(&owned));
        let second = c.request_manage(&caller, &manage(&owned)).unwrap();
        let (_, reason) = c.finish_manage(&second.id, "array-a", Ok(1 << 30));
        assert!(reason.is_some());
        c.request_unmanage(&caller, &first.id).unwrap();
        assert_eq!(
            c.finish_unmanage(&first.id),
            vec![ArrayEffect::Rename {
                from: owned.clone(),
                to: format!("{owned}-unmanaged")
            }]
        );
        assert!(!c.is_managed(&owned));
    }
}
