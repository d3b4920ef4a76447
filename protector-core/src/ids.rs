//! Newtype identifiers and the injected id generator.
//!
//! Every record protector creates gets a UUID from an [`IdGenerator`], never from
//! ambient randomness: a generator seeded with the simulator's seed yields the same ids
//! run after run, which is what makes a simulated run replayable byte for byte.

use std::fmt;
use std::sync::{Arc, Mutex};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        ///
        /// Clones share the text: an id is copied into many records, maps and requests.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps an identifier as the service spells it.
            pub fn new(id: impl Into<String>) -> Self {
                Self(Arc::from(id.into()))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the id and returns the inner string.
            pub fn into_string(self) -> String {
                self.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                let mut buf = Uuid::encode_buffer();
                Self(Arc::from(&*u.hyphenated().encode_lower(&mut buf)))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Ids hash and compare as their text, so maps keyed by an id can be searched
        /// with a `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(IdVisitor).map(Self)
            }
        }
    };
}

/// Reads an id from a string without an intermediate `String` when the format lends one.
struct IdVisitor;

impl de::Visitor<'_> for IdVisitor {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an identifier string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Arc::from(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Arc::from(v))
    }
}

string_id!(
    /// Id of a registered site (one OpenStack cloud).
    SiteId
);
string_id!(
    /// Id of a protection group.
    ProtectionGroupId
);
string_id!(
    /// Id of a protection-group member (a protected VM).
    MemberId
);
string_id!(
    /// Id of a DR operation (`dr_operations.id`).
    OperationId
);
string_id!(
    /// Keystone project (tenant) id.
    ProjectId
);
string_id!(
    /// Keystone user id.
    UserId
);
string_id!(
    /// Nova server id.
    ServerId
);
string_id!(
    /// Cinder volume id.
    VolumeId
);
string_id!(
    /// Cinder volume type id.
    VolumeTypeId
);
string_id!(
    /// Cinder generic volume group (consistency group) id.
    GroupId
);
string_id!(
    /// Neutron network id.
    NetworkId
);
string_id!(
    /// Neutron port id.
    PortId
);
string_id!(
    /// Nova flavor id.
    FlavorId
);
string_id!(
    /// Glance image id.
    ImageId
);

/// Source of UUIDs for new records.
///
/// Seeded generators ([`IdGenerator::seeded`]) are deterministic; the entropy-seeded one
/// ([`IdGenerator::from_entropy`]) is for production processes.
pub struct IdGenerator {
    rng: Mutex<ChaCha8Rng>,
}

impl IdGenerator {
    /// A deterministic generator: the same seed yields the same sequence of ids.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// A generator seeded from the operating system's entropy, for real deployments.
    #[allow(clippy::disallowed_methods)]
    pub fn from_entropy() -> Self {
        Self {
            rng: Mutex::new(ChaCha8Rng::from_os_rng()),
        }
    }

    /// The next random (version 4) UUID.
    pub fn uuid(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// The next id of the given newtype.
    pub fn next<T: From<Uuid>>(&self) -> T {
        T::from(self.uuid())
    }
}

impl fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdGenerator").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_generators_repeat_their_sequence() {
        let a = IdGenerator::seeded(7);
        let b = IdGenerator::seeded(7);
        let xs: Vec<Uuid> = (0..5).map(|_| a.uuid()).collect();
        let ys: Vec<Uuid> = (0..5).map(|_| b.uuid()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        assert_eq!(xs[0].get_version_num(), 4);
    }

    #[test]
    fn different_seeds_give_different_ids() {
        assert_ne!(IdGenerator::seeded(1).uuid(), IdGenerator::seeded(2).uuid());
    }

    #[test]
    fn ids_serialise_as_plain_strings() {
        let id = SiteId::new("site-a-uuid");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"site-a-uuid\"");
    }

    #[test]
    fn ids_read_back_from_json_and_yaml_whether_escaped_or_not() {
        let plain: VolumeId = serde_json::from_str("\"vol-1\"").unwrap();
        assert_eq!(plain.as_str(), "vol-1");
        // An escape makes the reader hand over an owned string instead of a slice.
        let escaped: VolumeId = serde_json::from_str("\"vol\\u002d2\"").unwrap();
        assert_eq!(escaped.as_str(), "vol-2");
        let from_value: VolumeId = serde_json::from_value(serde_json::json!("vol-3")).unwrap();
        assert_eq!(from_value, VolumeId::from("vol-3"));
        let from_yaml: ServerId = serde_yaml_ng::from_str("srv-1").unwrap();
        assert_eq!(from_yaml.as_str(), "srv-1");
        let err = serde_json::from_str::<VolumeId>("7").unwrap_err();
        assert!(err.to_string().contains("an identifier string"), "{err}");
    }

    #[test]
    fn clones_share_the_text_and_compare_hash_and_order_as_strings() {
        let a = MemberId::new(String::from("m-1"));
        let b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(format!("{a:?}"), "MemberId(\"m-1\")");
        assert!(MemberId::from("m-1") < MemberId::from("m-2"));
        let mut map = std::collections::HashMap::new();
        map.insert(a, 1);
        assert_eq!(map.get("m-1"), Some(&1));
        let u = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(VolumeId::from(u).as_str(), u.to_string());
        assert_eq!(VolumeId::from(u).into_string(), u.to_string());
    }
}
