//! # protector-purestorage
//!
//! The array side of protector: the resource-level [`FlashArray`] trait (implemented by
//! the REST 2.x client here and by the simulator) and the Pure storage driver.
#![deny(missing_docs)]

pub mod array;
pub use array::{
    ArrayConnection, ArrayInfo, ArrayProtectionGroup, ArrayVolume, FlashArray, NameRef,
    PgSnapshot, PgSnapshotOptions, PgSnapshotQuery, PgSnapshotTransfer, Pod, PodArray,
    PromotionState, ProtectionGroupTarget, ReplicationSchedule, TargetRetention, VolumeQuery,
    VolumeSnapshot, VolumeSnapshotQuery,
};
