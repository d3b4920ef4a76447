//! Conformance checks every implementation of the OpenStack ports must pass.
//!
//! The real clients run them against mock servers, the simulator runs them against its
//! simulated sites, and an embedder can run them against its own implementation. Each
//! check returns `Err` with a sentence describing the deviation instead of panicking.

use std::time::Duration;

use crate::error::BackendErrorKind;
use crate::ids::{ServerId, VolumeId};
use crate::ports::{BlockStorage, Compute, ManageVolume, ServerState, VolumeStatus, WaitPolicy};

/// Getting a server that does not exist is `NotFound`.
///
/// # Errors
/// A description of what the implementation did instead.
pub async fn get_missing_server_is_not_found(
    compute: &dyn Compute,
    missing: &ServerId,
) -> Result<(), String> {
    match compute.get_server(missing).await {
        Err(e) if e.kind == BackendErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "getting missing server {missing} failed with {e}, not a not-found error"
        )),
        Ok(s) => Err(format!(
            "getting missing server {missing} returned server {}",
            s.id
        )),
    }
}

/// Reading a server's state ([`Compute::get_server_state`]) agrees with reading the
/// whole server, and a missing server's state is `NotFound` too.
///
/// # Errors
/// A description of the deviation.
pub async fn server_state_agrees_with_the_server(
    compute: &dyn Compute,
    id: &ServerId,
    missing: &ServerId,
) -> Result<(), String> {
    let server = compute
        .get_server(id)
        .await
        .map_err(|e| format!("getting server {id} failed: {e}"))?;
    let state = compute
        .get_server_state(id)
        .await
        .map_err(|e| format!("getting the state of server {id} failed: {e}"))?;
    if state != ServerState::from(server.clone()) {
        return Err(format!(
            "server {id} reads as {server:?} but its state as {state:?}"
        ));
    }
    match compute.get_server_state(missing).await {
        Err(e) if e.kind == BackendErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "getting the state of missing server {missing} failed with {e}, not a not-found error"
        )),
        Ok(s) => Err(format!(
            "getting the state of missing server {missing} returned server {}",
            s.id
        )),
    }
}

/// Managing a backend volume creates a Cinder volume that becomes `available` with the
/// requested name and bootable flag, and that is listed. Returns its id.
///
/// # Errors
/// A description of the deviation.
pub async fn managed_volume_appears(
    storage: &dyn BlockStorage,
    request: &ManageVolume,
    wait: Duration,
) -> Result<VolumeId, String> {
    let created = storage
        .manage_volume(request)
        .await
        .map_err(|e| format!("manage of {} failed: {e}", request.source_name))?;
    let policy =
        WaitPolicy::new(wait).with_intervals(Duration::from_millis(10), Duration::from_millis(500));
    let ready = storage
        .wait_for_available(&created.id, &policy)
        .await
        .map_err(|e| format!("managed volume {} never became available: {e}", created.id))?;
    if ready.id != created.id {
        return Err(format!("waited for {} but got {}", created.id, ready.id));
    }
    if ready.name != request.name {
        return Err(format!(
            "managed volume is named {:?}, asked for {:?}",
            ready.name, request.name
        ));
    }
    if ready.status != VolumeStatus::Available {
        return Err(format!("managed volume is {}, not available", ready.status));
    }
    if ready.bootable != request.bootable {
        return Err(format!(
            "managed volume bootable is {}, asked for {}",
            ready.bootable, request.bootable
        ));
    }
    let listed = storage
        .list_volumes()
        .await
        .map_err(|e| format!("listing volumes failed: {e}"))?;
    if !listed.iter().any(|v| v.id == created.id) {
        return Err(format!("managed volume {} is not listed", created.id));
    }
    Ok(created.id)
}

/// Listing servers returns every server (across pages), each once.
///
/// # Errors
/// A description of the deviation.
pub async fn list_servers_returns_everything(
    compute: &dyn Compute,
    expected: usize,
) -> Result<(), String> {
    let servers = compute
        .list_servers()
        .await
        .map_err(|e| format!("listing servers failed: {e}"))?;
    let mut ids: Vec<_> = servers.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids.dedup();
    if ids.len() != servers.len() {
        return Err(format!(
            "{} servers listed but only {} distinct",
            servers.len(),
            ids.len()
        ));
    }
    if ids.len() != expected {
        return Err(format!("{} servers listed, expected {expected}", ids.len()));
    }
    Ok(())
}

/// Listing volumes returns every volume (across pages), each once.
///
/// # Errors
/// A description of the deviation.
pub async fn list_volumes_returns_everything(
    storage: &dyn BlockStorage,
    expected: usize,
) -> Result<(), String> {
    let volumes = storage
        .list_volumes()
        .await
        .map_err(|e| format!("listing volumes failed: {e}"))?;
    let mut ids: Vec<_> = volumes.iter().map(|v| v.id.clone()).collect();
    ids.sort();
    ids.dedup();
    if ids.len() != volumes.len() {
        return Err(format!(
            "{} volumes listed but only {} distinct",
            volumes.len(),
            ids.len()
        ));
    }
    if ids.len() != expected {
        return Err(format!("{} volumes listed, expected {expected}", ids.len()));
    }
    Ok(())
}
