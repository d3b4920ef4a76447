//! The rules protector enforces when `policy.yaml` says nothing else.

use super::parse::{Attr, Expr, Template};
use super::rules::*;

/// A rule and its default, for documentation and sample files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleDefault {
    /// The rule name, e.g. `protector:operations:index`.
    pub name: &'static str,
    /// The default rule string, in the policy language.
    pub check: String,
    /// What the rule guards.
    pub description: &'static str,
}

/// Every default rule, in the order a sample `policy.yaml` lists them:
///
/// | rule | default | why |
/// |---|---|---|
/// | `context_is_admin` | `role:admin` | oslo.policy convention |
/// | `admin_or_owner` | `is_admin:True or project_id:%(project_id)s` | oslo.policy convention |
/// | `default` | `rule:admin_or_owner` | oslo.policy convention |
/// | `admin_api` | `is_admin:True` | oslo.policy convention |
/// | `protector:operations:index\|show\|action` | `rule:default` | as the operations panel documents |
/// | `protector:sites:create\|update\|delete` | `rule:admin_api` | site registration requires admin |
/// | `protector:sites:index\|show\|validate\|volume_types` | `rule:admin_or_owner` | tenants pick the sites and volume types of their protection groups |
/// | `protector:sites:failover` | `role:dr_site_admin or role:admin` | the Admin panel's site-level failover needs `dr_site_admin` |
/// | `protector:tenant_mappings:*` | `rule:admin_api` | cloud-wide configuration |
/// | `protector:protection_groups:*` | `rule:admin_or_owner` | protection-group operations only need project membership |
/// | `protector:members:*`, `protector:policies:*`, `protector:health:show` | `rule:admin_or_owner` | as above |
///
/// Sites belong to the cloud rather than to a project, so the site rules that default
/// to `admin_or_owner` are enforced against a target of the caller's own project: any
/// member of any project may read and validate sites, only admins may change them.
pub fn defaults() -> Vec<RuleDefault> {
    default_exprs()
        .into_iter()
        .map(|(name, expr, description)| RuleDefault {
            name,
            check: expr.to_string(),
            description,
        })
        .collect()
}

/// A `policy.yaml` that spells out every default, each rule commented out under its
/// description, as oslo.policy's sample generator writes it.
pub fn sample_policy_yaml() -> String {
    let mut out = String::new();
    for rule in defaults() {
        out.push_str(&format!(
            "# {}\n#\"{}\": \"{}\"\n\n",
            rule.description, rule.name, rule.check
        ));
    }
    out
}

/// The defaults as parsed rules. Built directly rather than parsed, so the engine's
/// defaults cannot fail to load; a test checks each renders to text that parses back.
pub(crate) fn default_exprs() -> Vec<(&'static str, Expr, &'static str)> {
    let admin_or_owner = || Expr::rule(ADMIN_OR_OWNER);
    let admin_api = || Expr::rule(ADMIN_API);
    let mut out = vec![
        (
            CONTEXT_IS_ADMIN,
            Expr::role("admin"),
            "Decides who is a cloud administrator.",
        ),
        (
            ADMIN_OR_OWNER,
            Expr::Or(vec![
                Expr::Match(Attr::IsAdmin, Template::text("True")),
                Expr::Match(Attr::ProjectId, Template::key("project_id")),
            ]),
            "An administrator, or a member of the project that owns the target.",
        ),
        (
            DEFAULT,
            admin_or_owner(),
            "Enforced for rule names that are not defined.",
        ),
        (
            ADMIN_API,
            Expr::Match(Attr::IsAdmin, Template::text("True")),
            "Administrators only.",
        ),
        (
            OPERATIONS_INDEX,
            Expr::rule(DEFAULT),
            "List DR operations of a project.",
        ),
        (OPERATIONS_SHOW, Expr::rule(DEFAULT), "Show a DR operation."),
        (
            OPERATIONS_ACTION,
            Expr::rule(DEFAULT),
            "Act on a DR operation.",
        ),
    ];
    let sites = [
        (SITES_CREATE, admin_api(), "Register a site."),
        (SITES_INDEX, admin_or_owner(), "List sites."),
        (SITES_SHOW, admin_or_owner(), "Show a site."),
        (
            SITES_UPDATE,
            admin_api(),
            "Change a site's URL or credentials.",
        ),
        (SITES_DELETE, admin_api(), "Delete a site."),
        (
            SITES_VALIDATE,
            admin_or_owner(),
            "Check a site's connectivity and capabilities.",
        ),
        (
            SITES_VOLUME_TYPES,
            admin_or_owner(),
            "List a site's replication-capable volume types.",
        ),
        (
            SITES_FAILOVER,
            Expr::Or(vec![Expr::role("dr_site_admin"), Expr::role("admin")]),
            "Fail over every protection group whose current primary is a site.",
        ),
        (
            TENANT_MAPPINGS_CREATE,
            admin_api(),
            "Map a project to its peer on the other site.",
        ),
        (TENANT_MAPPINGS_INDEX, admin_api(), "List tenant mappings."),
        (TENANT_MAPPINGS_SHOW, admin_api(), "Show a tenant mapping."),
        (
            TENANT_MAPPINGS_DELETE,
            admin_api(),
            "Delete a tenant mapping.",
        ),
    ];
    let owned = [
        (PROTECTION_GROUPS_CREATE, "Create a protection group."),
        (PROTECTION_GROUPS_INDEX, "List protection groups."),
        (PROTECTION_GROUPS_SHOW, "Show a protection group."),
        (PROTECTION_GROUPS_UPDATE, "Change a protection group."),
        (PROTECTION_GROUPS_DELETE, "Delete a protection group."),
        (PROTECTION_GROUPS_FAILOVER, "Fail a protection group over."),
        (PROTECTION_GROUPS_FAILBACK, "Fail a protection group back."),
        (PROTECTION_GROUPS_TEST_FAILOVER, "Start a DR drill."),
        (
            PROTECTION_GROUPS_TEST_CLEANUP,
            "Remove a DR drill's resources.",
        ),
        (
            PROTECTION_GROUPS_SYNC_VOLUMES,
            "Replicate a protection group's volumes now.",
        ),
        (
            PROTECTION_GROUPS_SYNC_STATUS,
            "Show a protection group's metadata sync status.",
        ),
        (
            PROTECTION_GROUPS_SYNC_FORCE,
            "Push a protection group's metadata to the peer site.",
        ),
        (MEMBERS_CREATE, "Add a VM to a protection group."),
        (MEMBERS_INDEX, "List a protection group's members."),
        (MEMBERS_DELETE, "Remove a VM from a protection group."),
        (POLICIES_CREATE, "Create a replication policy."),
        (POLICIES_SHOW, "Show a replication policy."),
        (POLICIES_UPDATE, "Change a replication policy."),
        (HEALTH_SHOW, "Read replication health reports."),
    ];
    out.extend(sites);
    out.extend(
        owned
            .into_iter()
            .map(|(name, description)| (name, admin_or_owner(), description)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_default_renders_to_text_that_parses_back() {
        for (name, expr, _) in default_exprs() {
            assert_eq!(parse(&expr.to_string()), Ok(expr), "default of {name}");
        }
    }

    #[test]
    fn defaults_spell_the_documented_rules() {
        let texts: Vec<(&str, String)> = defaults()
            .into_iter()
            .map(|rule| (rule.name, rule.check))
            .collect();
        let get = |name: &str| {
            texts
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.as_str())
        };
        assert_eq!(get("context_is_admin"), Some("role:admin"));
        assert_eq!(
            get("admin_or_owner"),
            Some("is_admin:True or project_id:%(project_id)s")
        );
        assert_eq!(get("default"), Some("rule:admin_or_owner"));
        assert_eq!(get("admin_api"), Some("is_admin:True"));
        assert_eq!(get("protector:operations:index"), Some("rule:default"));
        assert_eq!(get("protector:operations:show"), Some("rule:default"));
        assert_eq!(get("protector:operations:action"), Some("rule:default"));
        assert_eq!(get("protector:sites:create"), Some("rule:admin_api"));
        assert_eq!(
            get("protector:protection_groups:failover"),
            Some("rule:admin_or_owner")
        );
        assert_eq!(
            get("protector:sites:failover"),
            Some("role:dr_site_admin or role:admin")
        );
    }

    #[test]
    fn every_rule_name_is_defined_exactly_once() {
        let names: Vec<&str> = defaults().into_iter().map(|rule| rule.name).collect();
        let unique: BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len());
        assert_eq!(names.len(), 38);
    }

    #[test]
    fn sample_file_lists_every_rule_commented_out() {
        let sample = sample_policy_yaml();
        assert!(sample.contains("#\"protector:operations:index\": \"rule:default\"\n"));
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&sample).unwrap();
        assert_eq!(value, serde_yaml_ng::Value::Null);
    }
}
