//! What a request acts on, as the policy engine sees it.

use std::collections::BTreeMap;

use crate::ids::ProjectId;

/// The target of a policy check: the attributes of the resource acted on, referenced
/// from rules as `%(key)s` (oslo.policy's target dict).
///
/// The product's rules reference `project_id`, the project that owns the resource; a
/// custom `policy.yaml` may reference any key a caller supplies, such as `user_id`.
/// A rule that references a key the target lacks does not match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target(BTreeMap<String, String>);

impl Target {
    /// An empty target: checks referencing `%(…)s` do not match it.
    pub fn new() -> Self {
        Self::default()
    }

    /// A target owned by `project`: `{"project_id": project}`.
    ///
    /// Protection groups and operations are checked against their owning project;
    /// cloud-wide resources (sites) against the caller's own project.
    pub fn project(project: &ProjectId) -> Self {
        Self::new().with("project_id", project.as_str())
    }

    /// The target with `key` set to `value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl From<BTreeMap<String, String>> for Target {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Target {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_target_carries_the_owning_project() {
        let target = Target::project(&ProjectId::new("p-1"));
        assert_eq!(target.get("project_id"), Some("p-1"));
        assert_eq!(target.get("user_id"), None);
    }

    #[test]
    fn later_values_replace_earlier_ones() {
        let target: Target = [("user_id", "u-1"), ("user_id", "u-2")]
            .into_iter()
            .collect();
        assert_eq!(target.get("user_id"), Some("u-2"));
    }
}
