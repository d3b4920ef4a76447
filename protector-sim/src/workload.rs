//! The workload helper: running VMs on replicated volumes, set up in one call.
//!
//! [`crate::SimWorld::create_workload`] puts servers straight into the `ACTIVE` state
//! (set-up takes no virtual time and is not counted as calls), each with a bootable
//! boot volume and data volumes of the requested type. Their array volumes are named as
//! the Pure Cinder driver names them (`volume-<cinder id>-cinder`) on the site's
//! array, Cinder reports them in `provider_id` and in the metadata `array_volume_name` /
//! `array_name`, and they are being written from the moment the server runs.

use std::collections::BTreeMap;

use protector_core::ids::{ProjectId, ServerId, VolumeId};
use protector_core::model::ResourceRef;
use protector_core::ports::{
    BlockDevice, NetworkAttachment, Server, ServerCreate, ServerStatus, Volume, VolumeAttachment,
    VolumeStatus,
};

use crate::cloud::state::{pure_volume_name, ArrayEffect, Caller, ServerRec};
use crate::error::SimError;
use crate::site::SimSite;
use crate::world::{SimWorld, TYPE_ASYNC};

/// What to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// Where.
    pub site: SimSite,
    /// Owning project (by name, e.g. `tenant-a`).
    pub project: String,
    /// Number of servers.
    pub servers: usize,
    /// Data volumes per server (besides the boot volume).
    pub data_volumes_per_server: usize,
    /// Volume type of every volume (e.g. `replicated-async`).
    pub volume_type: String,
    /// Network names, one NIC each.
    pub networks: Vec<String>,
    /// Flavor name.
    pub flavor: String,
    /// Server names are `<prefix>-<n>` (from 1).
    pub name_prefix: String,
    /// Size of every volume in GiB.
    pub volume_size_gb: u64,
}

impl WorkloadSpec {
    /// One server with one data volume on `replicated-async`, on the project's `-web`
    /// network, flavor `m1.small`, 10 GiB volumes, servers named `<project>-vm-<n>`.
    pub fn new(site: SimSite, project: &str) -> Self {
        Self {
            site,
            project: project.to_owned(),
            servers: 1,
            data_volumes_per_server: 1,
            volume_type: TYPE_ASYNC.to_owned(),
            networks: vec![format!("{project}-web")],
            flavor: "m1.small".to_owned(),
            name_prefix: format!("{project}-vm"),
            volume_size_gb: 10,
        }
    }

    /// Sets the number of servers.
    pub fn servers(mut self, n: usize) -> Self {
        self.servers = n;
        self
    }

    /// Sets the data volumes per server.
    pub fn data_volumes(mut self, m: usize) -> Self {
        self.data_volumes_per_server = m;
        self
    }

    /// Sets the volume type.
    pub fn volume_type(mut self, name: &str) -> Self {
        self.volume_type = name.to_owned();
        self
    }

    /// Sets the networks.
    pub fn networks(mut self, names: &[&str]) -> Self {
        self.networks = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    /// Sets the flavor.
    pub fn flavor(mut self, name: &str) -> Self {
        self.flavor = name.to_owned();
        self
    }

    /// Sets the server name prefix.
    pub fn named(mut self, prefix: &str) -> Self {
        self.name_prefix = prefix.to_owned();
        self
    }
}

/// A volume of a workload server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadVolume {
    /// Cinder id.
    pub id: VolumeId,
    /// Name on the site's array (`volume-<id>-cinder`).
    pub array_volume: String,
    /// Size in GiB.
    pub size_gb: u64,
}

/// One server of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadServer {
    /// Nova id.
    pub id: ServerId,
    /// Name.
    pub name: String,
    /// The boot volume.
    pub boot_volume: WorkloadVolume,
    /// The data volumes.
    pub data_volumes: Vec<WorkloadVolume>,
}

impl WorkloadServer {
    /// Boot volume first, then data volumes.
    pub fn volumes(&self) -> impl Iterator<Item = &WorkloadVolume> {
        std::iter::once(&self.boot_volume).chain(self.data_volumes.iter())
    }
}

/// What [`crate::SimWorld::create_workload`] created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Where.
    pub site: SimSite,
    /// Owning project.
    pub project_id: ProjectId,
    /// The servers, in creation order.
    pub servers: Vec<WorkloadServer>,
}

impl Workload {
    /// Server ids.
    pub fn server_ids(&self) -> Vec<ServerId> {
        self.servers.iter().map(|s| s.id.clone()).collect()
    }

    /// Every Cinder volume id (per server: boot, then data).
    pub fn volume_ids(&self) -> Vec<VolumeId> {
        self.servers
            .iter()
            .flat_map(|s| s.volumes().map(|v| v.id.clone()))
            .collect()
    }

    /// Every array volume name.
    pub fn array_volumes(&self) -> Vec<String> {
        self.servers
            .iter()
            .flat_map(|s| s.volumes().map(|v| v.array_volume.clone()))
            .collect()
    }

    /// Every resource, as journal references use them, on the site registered as
    /// `site_id`.
    pub fn resources(&self, site_id: &protector_core::ids::SiteId) -> Vec<ResourceRef> {
        let mut out = Vec::new();
        for s in &self.servers {
            out.push(ResourceRef::Server {
                site_id: site_id.clone(),
                id: s.id.clone(),
            });
            for v in s.volumes() {
                out.push(ResourceRef::Volume {
                    site_id: site_id.clone(),
                    id: v.id.clone(),
                });
                out.push(ResourceRef::ArrayVolume {
                    site_id: site_id.clone(),
                    name: v.array_volume.clone(),
                });
            }
        }
        out
    }
}

impl SimWorld {
    /// Creates running servers on replicated volumes (see the module docs).
    ///
    /// # Errors
    /// [`SimError::Unknown`] for an unknown project, network, flavor or volume type;
    /// [`SimError::Backend`] if the array refuses a volume.
    pub fn create_workload(&self, spec: &WorkloadSpec) -> Result<Workload, SimError> {
        let site = spec.site;
        let info = self.site(site).clone();
        let project_id = info.project_id(&spec.project)?;
        let flavor_id = info.flavor_id(&spec.flavor)?;
        info.volume_type_id(&spec.volume_type)?;
        let networks = spec
            .networks
            .iter()
            .map(|n| info.network_id(n))
            .collect::<Result<Vec<_>, _>>()?;
        let user_id = self.inner.with_cloud(site, |c| {
            c.users
                .values()
                .find(|u| u.roles.contains_key(&project_id) && u.name != crate::world::ADMIN)
                .or_else(|| c.users.values().find(|u| u.roles.contains_key(&project_id)))
                .map(|u| u.id.clone())
        });
        let Some(user_id) = user_id else {
            return Err(SimError::Invalid(format!(
                "project {} has no user on {site}",
                spec.project
            )));
        };
        let caller = Caller {
            user_id: &user_id,
            project_id: &project_id,
            admin: false,
        };
        let array = info.array_name.clone();
        let bytes = spec.volume_size_gb.saturating_mul(1 << 30);

        let mut servers = Vec::with_capacity(spec.servers);
        for n in 1..=spec.servers {
            let name = format!("{}-{n}", spec.name_prefix);
            let mut vols = Vec::new();
            for i in 0..=spec.data_volumes_per_server {
                let id: VolumeId = self.inner.with_cloud(site, |c| c.ids.next());
                let array_volume = pure_volume_name(&id);
                self.inner
                    .bridge_create_volume(site, &array_volume, bytes)?;
                let mut metadata = BTreeMap::new();
                metadata.insert("array_volume_name".to_owned(), array_volume.clone());
                metadata.insert("array_name".to_owned(), array.clone());
                let volume = Volume {
                    id: id.clone(),
                    name: if i == 0 {
                        format!("{name}-boot")
                    } else {
                        format!("{name}-data-{i}")
                    },
                    status: VolumeStatus::Available,
                    size_gb: spec.volume_size_gb,
                    volume_type: Some(spec.volume_type.clone()),
                    bootable: i == 0,
                    attachments: Vec::new(),
                    metadata,
                    host: Some(info.volume_host.clone()),
                    provider_id: Some(array_volume.clone()),
                    group_id: None,
                    project_id: Some(project_id.clone()),
                };
                self.inner.with_cloud(site, |c| c.remember_volume(volume));
                vols.push(WorkloadVolume {
                    id,
                    array_volume,
                    size_gb: spec.volume_size_gb,
                });
            }
            let request = ServerCreate {
                name: name.clone(),
                flavor_id: flavor_id.clone(),
                block_devices: vols
                    .iter()
                    .enumerate()
                    .map(|(i, v)| BlockDevice {
                        volume_id: v.id.clone(),
                        boot_index: (i == 0).then_some(0),
                        delete_on_termination: false,
                    })
                    .collect(),
                networks: networks
                    .iter()
                    .map(|id| NetworkAttachment {
                        network_id: id.clone(),
                        fixed_ip: None,
                    })
                    .collect(),
                key_name: None,
                security_groups: Vec::new(),
                metadata: BTreeMap::new(),
                availability_zone: None,
            };
            let (server, effects) = self.inner.with_cloud(
                site,
                |c| -> Result<(Server, Vec<ArrayEffect>), SimError> {
                    let server = c.create_server(&caller, &request);
                    if server.status == ServerStatus::Error {
                        return Err(SimError::Invalid(format!(
                            "workload server {name} cannot boot: {}",
                            server.fault.unwrap_or_default()
                        )));
                    }
                    let effects = c.finish_boot(&server.id).unwrap_or_default();
                    let server = c
                        .servers
                        .get(&server.id)
                        .map(|r: &ServerRec| r.server.clone())
                        .unwrap_or(server);
                    for v in &vols {
                        if let Some(vol) = c.volumes.get_mut(&v.id) {
                            vol.attachments = vec![VolumeAttachment {
                                server_id: server.id.clone(),
                                device: None,
                            }];
                        }
                    }
                    Ok((server, effects))
                },
            )?;
            self.inner
                .log(site, format_args!("workload server {} ACTIVE", server.id));
            self.inner.set_attached(site, &server.id, true);
            self.inner.apply_array_effects(site, effects);
            let mut vols = vols.into_iter();
            let boot_volume = vols
                .next()
                .ok_or_else(|| SimError::Invalid("no boot volume".to_owned()))?;
            servers.push(WorkloadServer {
                id: server.id,
                name,
                boot_volume,
                data_volumes: vols.collect(),
            });
        }
        let workload = Workload {
            site,
            project_id,
            servers,
        };
        self.inner
            .workloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(workload.clone());
        Ok(workload)
    }

    /// Every workload created so far.
    pub fn workloads(&self) -> Vec<Workload> {
        self.inner
            .workloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// An operator creates a new volume of `volume_type` and attaches it to a running
    /// workload server (as `openstack volume create` + `server add volume` would). The
    /// volume joins the server's workload, is `in-use` and is written while the server
    /// runs.
    ///
    /// # Errors
    /// [`SimError::Unknown`]/[`SimError::Invalid`] for an unknown type or server.
    pub fn attach_new_volume(
        &self,
        site: SimSite,
        server: &ServerId,
        volume_type: &str,
        size_gb: u64,
    ) -> Result<WorkloadVolume, SimError> {
        let info = self.site(site).clone();
        info.volume_type_id(volume_type)?;
        let (project_id, active, index) = self
            .inner
            .with_cloud(site, |c| {
                c.servers.get(server).map(|r| {
                    (
                        r.server.project_id.clone(),
                        r.server.status == ServerStatus::Active,
                        r.devices.len(),
                    )
                })
            })
            .ok_or_else(|| SimError::Invalid(format!("no server {server} on {site}")))?;
        let id: VolumeId = self.inner.with_cloud(site, |c| c.ids.next());
        let array_volume = pure_volume_name(&id);
        self.inner
            .bridge_create_volume(site, &array_volume, size_gb.saturating_mul(1 << 30))?;
        let mut metadata = BTreeMap::new();
        metadata.insert("array_volume_name".to_owned(), array_volume.clone());
        metadata.insert("array_name".to_owned(), info.array_name.clone());
        let volume = Volume {
            id: id.clone(),
            name: format!("{server}-data-{index}"),
            status: if active {
                VolumeStatus::InUse
            } else {
                VolumeStatus::Available
            },
            size_gb,
            volume_type: Some(volume_type.to_owned()),
            bootable: false,
            attachments: vec![VolumeAttachment {
                server_id: server.clone(),
                device: None,
            }],
            metadata,
            host: Some(info.volume_host.clone()),
            provider_id: Some(array_volume.clone()),
            group_id: None,
            project_id: Some(project_id),
        };
        self.inner.with_cloud(site, |c| {
            c.remember_volume(volume);
            if let Some(rec) = c.servers.get_mut(server) {
                rec.devices.push((id.clone(), false));
                rec.server.volumes_attached.push(id.clone());
            }
        });
        self.inner.set_attached(site, server, true);
        if active {
            self.inner.apply_array_effects(
                site,
                vec![ArrayEffect::Writing {
                    volume: array_volume.clone(),
                    writing: true,
                }],
            );
        }
        let attached = WorkloadVolume {
            id,
            array_volume,
            size_gb,
        };
        let mut workloads = self
            .inner
            .workloads
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for w in workloads.iter_mut().filter(|w| w.site == site) {
            for s in w.servers.iter_mut().filter(|s| &s.id == server) {
                s.data_volumes.push(attached.clone());
            }
        }
        self.inner.log(
            site,
            format_args!("volume {} attached to {server}", attached.id),
        );
        Ok(attached)
    }

    /// Creates a bare volume on a site's array, outside Cinder (for manage scenarios).
    ///
    /// # Errors
    /// The array's refusal ("already exists", invalid name).
    pub fn create_array_volume(
        &self,
        site: SimSite,
        name: &str,
        size_gb: u64,
    ) -> Result<(), SimError> {
        self.inner
            .bridge_create_volume(site, name, size_gb.saturating_mul(1 << 30))?;
        self.inner
            .log(site, format_args!("array volume {name} created"));
        Ok(())
    }
}
