//! Cinder's JSON shapes (private DTOs) and their parsers, plain `fn(&[u8])` functions.

use protector_core::ports::{
    Volume, VolumeAttachment, VolumeGroup, VolumeService, VolumeStatus, VolumeType,
};
use serde::Deserialize;

use crate::error::ParseError;
use crate::pagination::{next_marker, LinkDto, Page};
use crate::wire_util::{lenient_bool, lenient_string, lenient_u64, string_map};

#[derive(Deserialize)]
struct VolumeEnvelope {
    volume: VolumeDto,
}

#[derive(Deserialize)]
struct VolumesEnvelope {
    volumes: Vec<VolumeDto>,
    #[serde(default)]
    volumes_links: Vec<LinkDto>,
}

#[derive(Deserialize)]
struct VolumeDto {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    size: u64,
    #[serde(default)]
    volume_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    bootable: bool,
    #[serde(default)]
    attachments: Vec<AttachmentDto>,
    #[serde(default)]
    metadata: serde_json::Value,
    #[serde(default, rename = "os-vol-host-attr:host")]
    host: Option<String>,
    #[serde(default)]
    provider_id: Option<String>,
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default, rename = "os-vol-tenant-attr:tenant_id")]
    tenant_id: Option<String>,
}

#[derive(Deserialize)]
struct AttachmentDto {
    #[serde(default)]
    server_id: Option<String>,
    #[serde(default)]
    device: Option<String>,
}

/// Legacy views spell some nulls as the string `"null"`.
fn real(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty() && s != "null" && s != "None")
}

fn volume_from_dto(d: VolumeDto) -> Volume {
    Volume {
        id: d.id.into(),
        name: real(d.name).unwrap_or_default(),
        status: VolumeStatus::parse(d.status.as_deref().unwrap_or("unknown")),
        size_gb: d.size,
        volume_type: real(d.volume_type),
        bootable: d.bootable,
        attachments: d
            .attachments
            .into_iter()
            .filter_map(|a| {
                Some(VolumeAttachment {
                    server_id: a.server_id?.into(),
                    device: a.device,
                })
            })
            .collect(),
        metadata: string_map(&d.metadata),
        host: real(d.host),
        provider_id: real(d.provider_id),
        group_id: real(d.group_id).map(Into::into),
        project_id: real(d.tenant_id).map(Into::into),
    }
}

/// Parses `GET /volumes/{id}` and the `POST /manageable_volumes` response.
///
/// # Errors
/// [`ParseError`] when the body is not a volume.
pub fn parse_volume(body: &[u8]) -> Result<Volume, ParseError> {
    let env: VolumeEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("cinder volume", &e))?;
    Ok(volume_from_dto(env.volume))
}

/// Parses one page of `GET /volumes/detail`.
///
/// # Errors
/// [`ParseError`] when the body is not a volume list.
pub fn parse_volume_page(body: &[u8]) -> Result<Page<Volume>, ParseError> {
    let env: VolumesEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("cinder volume list", &e))?;
    Ok(Page {
        next_marker: next_marker(&env.volumes_links),
        items: env.volumes.into_iter().map(volume_from_dto).collect(),
    })
}

#[derive(Deserialize)]
struct TypesEnvelope {
    volume_types: Vec<TypeDto>,
    /// Cinder names the type list's links in the singular (`volume_type_links`, its
    /// `types` view), unlike `volumes_links`; the plural is accepted too.
    #[serde(default, alias = "volume_types_links")]
    volume_type_links: Vec<LinkDto>,
}

#[derive(Deserialize)]
struct TypeDto {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    extra_specs: serde_json::Value,
}

/// Parses one page of `GET /types`.
///
/// # Errors
/// [`ParseError`] when the body is not a volume type list.
pub fn parse_volume_type_page(body: &[u8]) -> Result<Page<VolumeType>, ParseError> {
    let env: TypesEnvelope = serde_json::from_slice(body)
        .map_err(|e| ParseError::json("cinder volume type list", &e))?;
    Ok(Page {
        next_marker: next_marker(&env.volume_type_links),
        items: env
            .volume_types
            .into_iter()
            .map(|t| VolumeType {
                id: t.id.into(),
                name: t.name.unwrap_or_default(),
                extra_specs: string_map(&t.extra_specs),
            })
            .collect(),
    })
}

#[derive(Deserialize)]
struct ServicesEnvelope {
    services: Vec<ServiceDto>,
}

#[derive(Deserialize)]
struct ServiceDto {
    #[serde(default)]
    binary: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    zone: Option<String>,
}

/// Parses `GET /os-services`, keeping the `cinder-volume` services.
///
/// # Errors
/// [`ParseError`] when the body is not a service list.
pub fn parse_volume_services(body: &[u8]) -> Result<Vec<VolumeService>, ParseError> {
    let env: ServicesEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("cinder service list", &e))?;
    Ok(env
        .services
        .into_iter()
        .filter(|s| s.binary.as_deref() == Some("cinder-volume"))
        .filter_map(|s| {
            Some(VolumeService {
                host: s.host?,
                status: s.status.unwrap_or_default(),
                state: s.state.unwrap_or_default(),
                zone: s.zone,
            })
        })
        .collect())
}

#[derive(Deserialize)]
struct GroupEnvelope {
    group: GroupDto,
}

#[derive(Deserialize)]
struct GroupDto {
    #[serde(deserialize_with = "lenient_string")]
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    group_type: Option<String>,
    #[serde(default)]
    volume_types: Vec<String>,
    #[serde(default)]
    volumes: Vec<serde_json::Value>,
}

/// Parses `GET /groups/{id}` (and the short `POST /groups` answer).
///
/// # Errors
/// [`ParseError`] when the body is not a group.
pub fn parse_group(body: &[u8]) -> Result<VolumeGroup, ParseError> {
    let env: GroupEnvelope =
        serde_json::from_slice(body).map_err(|e| ParseError::json("cinder group", &e))?;
    let g = env.group;
    Ok(VolumeGroup {
        id: g.id.into(),
        name: g.name.unwrap_or_default(),
        status: g.status.unwrap_or_default(),
        group_type: g.group_type.unwrap_or_default(),
        volume_types: g.volume_types.into_iter().map(Into::into).collect(),
        // `volumes` is a list of ids, or of volume objects in some views.
        volumes: g
            .volumes
            .into_iter()
            .filter_map(|v| match v {
                serde_json::Value::String(s) => Some(s.into()),
                serde_json::Value::Object(o) => {
                    o.get("id").and_then(|i| i.as_str()).map(Into::into)
                }
                _ => None,
            })
            .collect(),
    })
}
