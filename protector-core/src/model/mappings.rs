//! Resource mappings between sites and the `SRC=DST` argument parser.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::MappingError;
use crate::ids::SiteId;

/// Network, flavor and image mappings for one direction (source site → target site).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceMappings {
    /// Source network id → target network id.
    #[serde(default)]
    pub networks: BTreeMap<String, String>,
    /// Source flavor (id or name) → target flavor (id or name).
    #[serde(default)]
    pub flavors: BTreeMap<String, String>,
    /// Source image id → target image id.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
}

impl ResourceMappings {
    /// Whether no mapping is set.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.flavors.is_empty() && self.images.is_empty()
    }

    /// These mappings with `overrides` applied on top (entries in `overrides` win).
    pub fn overlaid_with(&self, overrides: &ResourceMappings) -> ResourceMappings {
        let mut out = self.clone();
        out.networks.extend(overrides.networks.clone());
        out.flavors.extend(overrides.flavors.clone());
        out.images.extend(overrides.images.clone());
        out
    }

    /// The mappings of the opposite direction (values become keys).
    pub fn reversed(&self) -> ResourceMappings {
        fn flip(m: &BTreeMap<String, String>) -> BTreeMap<String, String> {
            m.iter().map(|(k, v)| (v.clone(), k.clone())).collect()
        }
        ResourceMappings {
            networks: flip(&self.networks),
            flavors: flip(&self.flavors),
            images: flip(&self.images),
        }
    }
}

/// Mappings stored on a protection group for one direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionalMappings {
    /// Where the workload runs before the operation.
    pub source_site_id: SiteId,
    /// Where it runs after.
    pub target_site_id: SiteId,
    /// The mappings.
    pub mappings: ResourceMappings,
}

/// Parses one `SRC=DST` argument.
///
/// # Errors
/// [`MappingError`] naming the argument when it has no `=`, more than one, or an empty
/// side.
pub fn parse_mapping(arg: &str) -> Result<(String, String), MappingError> {
    let mut parts = arg.split('=');
    let (src, dst) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(d), None) => (s.trim(), d.trim()),
        (_, None, _) => {
            return Err(MappingError::MissingSeparator {
                arg: arg.to_owned(),
            })
        }
        _ => {
            return Err(MappingError::TooManySeparators {
                arg: arg.to_owned(),
            })
        }
    };
    if src.is_empty() {
        return Err(MappingError::EmptySource {
            arg: arg.to_owned(),
        });
    }
    if dst.is_empty() {
        return Err(MappingError::EmptyTarget {
            arg: arg.to_owned(),
        });
    }
    Ok((src.to_owned(), dst.to_owned()))
}

/// Parses repeated `SRC=DST` arguments into a map. Repeating a pair is harmless; mapping
/// one source to two targets is an error.
///
/// # Errors
/// The first malformed argument, or a [`MappingError::Conflict`].
pub fn parse_mappings<S: AsRef<str>>(args: &[S]) -> Result<BTreeMap<String, String>, MappingError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for arg in args {
        let (src, dst) = parse_mapping(arg.as_ref())?;
        if let Some(existing) = out.get(&src) {
            if existing != &dst {
                return Err(MappingError::Conflict {
                    source_name: src,
                    first: existing.clone(),
                    second: dst,
                });
            }
            continue;
        }
        out.insert(src, dst);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_well_formed_mapping() {
        assert_eq!(
            parse_mapping("net-primary-web=net-secondary-web").unwrap(),
            ("net-primary-web".to_owned(), "net-secondary-web".to_owned())
        );
    }

    #[test]
    fn rejects_malformed_mappings_with_specific_errors() {
        assert_eq!(
            parse_mapping("=dst"),
            Err(MappingError::EmptySource { arg: "=dst".into() })
        );
        assert_eq!(
            parse_mapping("src="),
            Err(MappingError::EmptyTarget { arg: "src=".into() })
        );
        assert_eq!(
            parse_mapping("a=b=c"),
            Err(MappingError::TooManySeparators {
                arg: "a=b=c".into()
            })
        );
        assert_eq!(
            parse_mapping("nodelimiter"),
            Err(MappingError::MissingSeparator {
                arg: "nodelimiter".into()
            })
        );
        assert_eq!(
            parse_mapping("a=b=c").unwrap_err().to_string(),
            "malformed mapping 'a=b=c': expected exactly one '=' in SRC=DST"
        );
    }

    #[test]
    fn conflicting_duplicates_are_an_error_but_repeats_are_not() {
        let ok = parse_mappings(&["a=b", "a=b", "c=d"]).unwrap();
        assert_eq!(ok.len(), 2);
        let err = parse_mappings(&["a=b", "a=c"]).unwrap_err();
        assert_eq!(err.to_string(), "conflicting mappings for 'a': 'b' and 'c'");
    }

    #[test]
    fn reversed_mappings_swap_direction() {
        let m = ResourceMappings {
            networks: parse_mappings(&["a=b"]).unwrap(),
            ..Default::default()
        };
        assert_eq!(
            m.reversed().networks.get("b").map(String::as_str),
            Some("a")
        );
    }
}
