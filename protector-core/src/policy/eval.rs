//! Evaluation of parsed rules against a caller's credentials and a target.
//!
//! The credentials are oslo.policy's: `project_id`, `user_id`, `roles` and `is_admin`
//! (`True` when the caller has the `admin` role), all taken from the
//! [`RequestContext`].

use std::collections::BTreeMap;

use super::parse::{Attr, Expr};
use super::target::Target;
use crate::context::RequestContext;

/// The longest chain of `rule:` references the engine follows. Longer chains are
/// refused when the policy is loaded, so evaluation cannot exhaust the stack.
pub const MAX_REFERENCE_DEPTH: usize = 32;

/// One request's view of the rules: what `rule:<name>` resolves to, who asks, and on
/// what.
pub(crate) struct Env<'a> {
    pub(crate) rules: &'a BTreeMap<String, Expr>,
    pub(crate) ctx: &'a RequestContext,
    pub(crate) target: &'a Target,
}

impl Env<'_> {
    /// Whether `expr` passes, `depth` being the number of `rule:` references followed to
    /// reach it.
    pub(crate) fn eval(&self, expr: &Expr, depth: usize) -> bool {
        let lookup = |key: &str| self.target.get(key).map(str::to_owned);
        match expr {
            Expr::Always => true,
            Expr::Never => false,
            // Loading refuses undefined references and chains deeper than the limit;
            // should either slip through, the check fails closed.
            Expr::Rule(name) => {
                depth < MAX_REFERENCE_DEPTH
                    && self
                        .rules
                        .get(name)
                        .is_some_and(|rule| self.eval(rule, depth + 1))
            }
            Expr::Role(template) => template
                .resolve(lookup)
                .is_some_and(|role| self.ctx.has_role(&role)),
            Expr::Match(attr, template) => {
                template.resolve(lookup).is_some_and(|value| match attr {
                    Attr::ProjectId => self.ctx.project_id.as_str() == value,
                    Attr::UserId => self.ctx.user_id.as_str() == value,
                    // oslo.policy compares list credentials element by element, exactly.
                    Attr::Roles => self.ctx.roles.contains(&value),
                    Attr::IsAdmin => value == if self.ctx.is_admin() { "True" } else { "False" },
                })
            }
            Expr::Literal(literal, template) => template
                .resolve(lookup)
                .is_some_and(|value| value == *literal),
            Expr::Not(inner) => !self.eval(inner, depth),
            Expr::And(items) => items.iter().all(|item| self.eval(item, depth)),
            Expr::Or(items) => items.iter().any(|item| self.eval(item, depth)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;
    use crate::ids::ProjectId;

    fn passes(rule: &str, ctx: &RequestContext, target: &Target) -> bool {
        let rules = BTreeMap::from([("r".to_owned(), parse(rule).unwrap())]);
        let env = Env {
            rules: &rules,
            ctx,
            target,
        };
        env.eval(&Expr::rule("r"), 0)
    }

    fn member_of_p1() -> RequestContext {
        RequestContext::new("u1", "p1", &["member"])
    }

    #[test]
    fn role_checks_ignore_case_as_keystone_does() {
        let ctx = RequestContext::new("u1", "p1", &["Member"]);
        assert!(passes("role:member", &ctx, &Target::new()));
        assert!(!passes("role:admin", &ctx, &Target::new()));
    }

    #[test]
    fn roles_credential_compares_exactly() {
        let ctx = RequestContext::new("u1", "p1", &["Member"]);
        assert!(passes("roles:Member", &ctx, &Target::new()));
        assert!(!passes("roles:member", &ctx, &Target::new()));
    }

    #[test]
    fn target_references_compare_with_the_credentials() {
        let own = Target::project(&ProjectId::new("p1")).with("user_id", "u1");
        let other = Target::project(&ProjectId::new("p2")).with("user_id", "u2");
        for rule in ["project_id:%(project_id)s", "user_id:%(user_id)s"] {
            assert!(passes(rule, &member_of_p1(), &own), "{rule}");
            assert!(!passes(rule, &member_of_p1(), &other), "{rule}");
        }
    }

    #[test]
    fn a_reference_to_a_missing_target_key_never_matches() {
        assert!(!passes(
            "project_id:%(project_id)s",
            &member_of_p1(),
            &Target::new()
        ));
        assert!(passes(
            "not project_id:%(project_id)s",
            &member_of_p1(),
            &Target::new()
        ));
    }

    #[test]
    fn literal_checks_match_fixed_values() {
        let ctx = member_of_p1();
        assert!(passes("project_id:p1", &ctx, &Target::new()));
        assert!(!passes("project_id:p2", &ctx, &Target::new()));
        let target = Target::new().with("kind", "gold");
        assert!(passes("'gold':%(kind)s", &ctx, &target));
        assert!(!passes("'silver':%(kind)s", &ctx, &target));
    }

    #[test]
    fn role_names_can_come_from_the_target() {
        let target = Target::new().with("needed", "member");
        assert!(passes("role:%(needed)s", &member_of_p1(), &target));
        assert!(!passes("role:%(absent)s", &member_of_p1(), &target));
    }

    #[test]
    fn is_admin_follows_the_admin_role() {
        let admin = RequestContext::new("root", "p9", &["admin"]);
        assert!(passes("is_admin:True", &admin, &Target::new()));
        assert!(!passes("is_admin:False", &admin, &Target::new()));
        assert!(!passes("is_admin:True", &member_of_p1(), &Target::new()));
        assert!(passes("is_admin:False", &member_of_p1(), &Target::new()));
    }

    #[test]
    fn always_and_never_ignore_the_caller() {
        assert!(passes("@", &member_of_p1(), &Target::new()));
        assert!(passes("", &member_of_p1(), &Target::new()));
        assert!(!passes("!", &member_of_p1(), &Target::new()));
        assert!(passes("not !", &member_of_p1(), &Target::new()));
    }

    #[test]
    fn undefined_references_fail_closed() {
        assert!(!passes("rule:nowhere", &member_of_p1(), &Target::new()));
    }
}
