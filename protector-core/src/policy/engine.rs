//! The policy engine: the defaults, a `policy.yaml` overlaid on them, and enforcement.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml_ng::Value;

use super::defaults::default_exprs;
use super::eval::{Env, MAX_REFERENCE_DEPTH};
use super::parse::{parse, Expr};
use super::rules;
use super::target::Target;
use crate::context::RequestContext;
use crate::error::{Error, PolicyError};

/// Decides whether a caller may perform an action, from oslo.policy-style rules.
///
/// Built from the product's defaults ([`PolicyEngine::with_defaults`]) with an
/// operator's `policy.yaml` overlaid ([`PolicyEngine::load`]). Every rule and every
/// `rule:` reference is checked when the engine is built, so enforcing never meets a
/// malformed rule.
#[derive(Clone, Debug)]
pub struct PolicyEngine {
    rules: BTreeMap<String, Expr>,
    overridden: BTreeSet<String>,
}

impl Default for PolicyEngine {
    fn default() -> Self {
        Self::with_defaults()
    }
}

impl PolicyEngine {
    /// The product's default rules, listed by [`defaults`](super::defaults()).
    pub fn with_defaults() -> Self {
        Self {
            rules: default_exprs()
                .into_iter()
                .map(|(name, expr, _)| (name.to_owned(), expr))
                .collect(),
            overridden: BTreeSet::new(),
        }
    }

    /// The defaults with the rules of a `policy.yaml` read from `path` overlaid: a rule
    /// the file names replaces the default of that name, other defaults stay.
    ///
    /// # Errors
    ///
    /// [`PolicyError::Read`] if the file cannot be read, and every error of
    /// [`PolicyEngine::from_yaml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// The defaults with the rules of the `policy.yaml` text `text` overlaid.
    /// `source_name` names the text in errors (usually its path). An empty document
    /// changes nothing.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming `source_name`, and the rule at fault where there is
    /// one, if the text is not YAML, is not a map of rule name to rule string, holds a
    /// rule that does not parse, references a rule that is not defined, or makes rules
    /// reference each other in a cycle or in a chain longer than
    /// [`MAX_REFERENCE_DEPTH`].
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let file = || source_name.to_owned();
        let document: Value = serde_yaml_ng::from_str(text).map_err(|e| PolicyError::Yaml {
            file: file(),
            reason: e.to_string(),
        })?;
        let mut engine = Self::with_defaults();
        let map = match document {
            Value::Null => return Ok(engine),
            Value::Mapping(map) => map,
            other => {
                return Err(PolicyError::NotAMap {
                    file: file(),
                    found: describe(&other),
                })
            }
        };
        for (name, rule) in map {
            let name = match name {
                Value::String(name) => name,
                other => {
                    return Err(PolicyError::NonStringName {
                        file: file(),
                        name: render_scalar(&other),
                    })
                }
            };
            let text = match rule {
                Value::String(text) => text,
                other => {
                    return Err(PolicyError::NonStringRule {
                        file: file(),
                        rule: name,
                        found: describe(&other),
                    })
                }
            };
            let expr = parse(&text).map_err(|problem| PolicyError::Syntax {
                file: file(),
                rule: name.clone(),
                problem,
            })?;
            engine.rules.insert(name.clone(), expr);
            engine.overridden.insert(name);
        }
        engine.check_references(source_name)?;
        Ok(engine)
    }

    /// Refuses undefined `rule:` references, cycles and over-long chains.
    fn check_references(&self, file: &str) -> Result<(), PolicyError> {
        for (name, expr) in &self.rules {
            if let Some(missing) = expr
                .references()
                .into_iter()
                .find(|r| !self.rules.contains_key(*r))
            {
                return Err(PolicyError::UnknownRule {
                    file: file.to_owned(),
                    rule: name.clone(),
                    missing: missing.to_owned(),
                });
            }
        }
        let mut heights = BTreeMap::new();
        let mut stack = Vec::new();
        for name in self.rules.keys() {
            self.height(name, &mut stack, &mut heights)
                .map_err(|problem| match problem {
                    ChainProblem::Cycle(cycle) => PolicyError::Cycle {
                        file: file.to_owned(),
                        // Name a rule the operator wrote: that is where the fix goes.
                        rule: cycle
                            .iter()
                            .find(|n| self.overridden.contains(*n))
                            .or(cycle.first())
                            .cloned()
                            .unwrap_or_default(),
                        cycle,
                    },
                    ChainProblem::TooDeep(rule) => PolicyError::TooDeep {
                        file: file.to_owned(),
                        rule,
                        limit: MAX_REFERENCE_DEPTH,
                    },
                })?;
        }
        Ok(())
    }

    /// The longest chain of `rule:` references below `name`, depth-first with the
    /// rules being visited on `stack` (a rule met again on the stack closes a cycle).
    fn height<'a>(
        &'a self,
        name: &'a str,
        stack: &mut Vec<&'a str>,
        heights: &mut BTreeMap<&'a str, usize>,
    ) -> Result<usize, ChainProblem> {
        if let Some(height) = heights.get(name) {
            return Ok(*height);
        }
        if let Some(at) = stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|n| (*n).to_owned()).collect();
            cycle.push(name.to_owned());
            return Err(ChainProblem::Cycle(cycle));
        }
        if stack.len() > MAX_REFERENCE_DEPTH {
            let start = stack.first().copied().unwrap_or(name);
            return Err(ChainProblem::TooDeep(start.to_owned()));
        }
        stack.push(name);
        let mut height = 0;
        if let Some(expr) = self.rules.get(name) {
            for reference in expr.references() {
                if let Some((key, _)) = self.rules.get_key_value(reference) {
                    height = height.max(1 + self.height(key, stack, heights)?);
                }
            }
        }
        stack.pop();
        if height > MAX_REFERENCE_DEPTH {
            return Err(ChainProblem::TooDeep(name.to_owned()));
        }
        heights.insert(name, height);
        Ok(height)
    }

    /// Whether `ctx` may perform `rule` on `target`.
    ///
    /// A rule name that is not defined at all is decided by the `default` rule, as
    /// oslo.policy does; with the product's defaults that is `admin_or_owner`.
    pub fn check(&self, rule: &str, ctx: &RequestContext, target: &Target) -> bool {
        let env = Env {
            rules: &self.rules,
            ctx,
            target,
        };
        let Some(expr) = self
            .rules
            .get(rule)
            .or_else(|| self.rules.get(rules::DEFAULT))
        else {
            return false;
        };
        env.eval(expr, 0)
    }

    /// Like [`PolicyEngine::check`], as a `Result` for `?`.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] naming `rule` (oslo.policy's
    /// `Policy doesn't allow <rule> to be performed.`) when the caller may not.
    pub fn enforce(&self, rule: &str, ctx: &RequestContext, target: &Target) -> Result<(), Error> {
        if self.check(rule, ctx, target) {
            Ok(())
        } else {
            tracing::debug!(
                rule,
                user_id = %ctx.user_id,
                project_id = %ctx.project_id,
                "policy denied"
            );
            Err(Error::Forbidden {
                rule: rule.to_owned(),
            })
        }
    }

    /// The rule `name` as the engine understood it, in the policy language; `None` if
    /// it is not defined.
    pub fn rule_text(&self, name: &str) -> Option<String> {
        self.rules.get(name).map(Expr::to_string)
    }

    /// The names of every defined rule, sorted.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

    /// Whether the loaded `policy.yaml` set rule `name` (rather than the default).
    pub fn is_overridden(&self, name: &str) -> bool {
        self.overridden.contains(name)
    }
}

enum ChainProblem {
    /// The rules on the cycle, the first repeated at the end.
    Cycle(Vec<String>),
    /// The rule at the start of a chain longer than the limit.
    TooDeep(String),
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

fn render_scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => format!("({})", describe(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::tests::arb_expr;
    use super::*;
    use crate::ids::ProjectId;
    use proptest::prelude::*;

    const FILE: &str = "/etc/protector/policy.yaml";

    fn member(project: &str) -> RequestContext {
        RequestContext::new("u-member", project, &["member"])
    }

    fn admin() -> RequestContext {
        RequestContext::new("u-admin", "admin-project", &["admin"])
    }

    fn owned_by(project: &str) -> Target {
        Target::project(&ProjectId::new(project))
    }

    fn load_err(text: &str) -> String {
        match PolicyEngine::from_yaml_str(text, FILE) {
            Ok(_) => panic!("policy {text:?} loaded"),
            Err(e) => e.to_string(),
        }
    }

    /// The `protector:*` rules a tenant may use on resources its project owns.
    fn tenant_rules() -> Vec<&'static str> {
        super::super::defaults()
            .into_iter()
            .filter(|r| r.name.starts_with("protector:") && r.check != "rule:admin_api")
            .filter(|r| r.name != rules::SITES_FAILOVER)
            .map(|r| r.name)
            .collect()
    }

    #[test]
    fn owning_project_member_may_list_and_show_operations() {
        let engine = PolicyEngine::with_defaults();
        for rule in [rules::OPERATIONS_INDEX, rules::OPERATIONS_SHOW] {
            assert!(engine.enforce(rule, &member("p1"), &owned_by("p1")).is_ok());
        }
    }

    #[test]
    fn member_of_another_project_may_not_see_operations() {
        let engine = PolicyEngine::with_defaults();
        for rule in [rules::OPERATIONS_INDEX, rules::OPERATIONS_SHOW] {
            let err = engine
                .enforce(rule, &member("p2"), &owned_by("p1"))
                .unwrap_err();
            assert!(matches!(&err, Error::Forbidden { rule: r } if r == rule));
            assert_eq!(
                err.to_string(),
                format!("Policy doesn't allow {rule} to be performed.")
            );
        }
    }

    #[test]
    fn admin_may_do_everything_on_any_project() {
        let engine = PolicyEngine::with_defaults();
        let names: Vec<&str> = engine.rule_names().collect();
        assert!(names.len() > 30);
        for rule in names {
            assert!(engine.check(rule, &admin(), &owned_by("p1")), "{rule}");
        }
    }

    #[test]
    fn non_admin_may_not_register_change_or_delete_sites() {
        let engine = PolicyEngine::with_defaults();
        let ctx = member("p1");
        let own = Target::project(&ctx.project_id);
        for rule in [
            rules::SITES_CREATE,
            rules::SITES_UPDATE,
            rules::SITES_DELETE,
        ] {
            assert!(!engine.check(rule, &ctx, &own), "{rule}");
        }
        for rule in [rules::SITES_INDEX, rules::SITES_SHOW, rules::SITES_VALIDATE] {
            assert!(engine.check(rule, &ctx, &own), "{rule}");
        }
    }

    #[test]
    fn site_level_failover_needs_dr_site_admin_or_admin() {
        let engine = PolicyEngine::with_defaults();
        let own = owned_by("p1");
        assert!(!engine.check(rules::SITES_FAILOVER, &member("p1"), &own));
        let dr = RequestContext::new("u-dr", "p1", &["member", "dr_site_admin"]);
        assert!(engine.check(rules::SITES_FAILOVER, &dr, &own));
    }

    #[test]
    fn tenants_never_pass_rules_on_each_others_resources() {
        let engine = PolicyEngine::with_defaults();
        let rules = tenant_rules();
        assert!(rules.len() >= 25);
        for rule in rules {
            assert!(engine.check(rule, &member("p1"), &owned_by("p1")), "{rule}");
            assert!(
                !engine.check(rule, &member("p2"), &owned_by("p1")),
                "{rule}"
            );
            assert!(!engine.check(rule, &member("p1"), &Target::new()), "{rule}");
        }
    }

    #[test]
    fn undefined_rule_names_are_decided_by_the_default_rule() {
        let engine = PolicyEngine::with_defaults();
        assert!(engine.check("protector:future:thing", &member("p1"), &owned_by("p1")));
        assert!(!engine.check("protector:future:thing", &member("p2"), &owned_by("p1")));
        let strict = PolicyEngine::from_yaml_str(r#"default: "!""#, FILE).unwrap();
        assert!(!strict.check("protector:future:thing", &admin(), &owned_by("p1")));
    }

    #[test]
    fn yaml_override_makes_operations_admin_only() {
        let engine = PolicyEngine::from_yaml_str(
            "\"protector:operations:index\": \"rule:admin_api\"\n\
             \"protector:operations:show\": \"rule:admin_api\"\n",
            FILE,
        )
        .unwrap();
        let own = owned_by("p1");
        assert!(!engine.check(rules::OPERATIONS_INDEX, &member("p1"), &own));
        assert!(!engine.check(rules::OPERATIONS_SHOW, &member("p1"), &own));
        assert!(engine.check(rules::OPERATIONS_INDEX, &admin(), &own));
        // Rules the file does not name keep their defaults.
        assert!(engine.check(rules::PROTECTION_GROUPS_SHOW, &member("p1"), &own));
        assert!(engine.is_overridden(rules::OPERATIONS_INDEX));
        assert!(!engine.is_overridden(rules::PROTECTION_GROUPS_SHOW));
        assert_eq!(
            engine.rule_text(rules::OPERATIONS_INDEX).as_deref(),
            Some("rule:admin_api")
        );
    }

    #[test]
    fn overriding_a_base_rule_changes_every_rule_built_on_it() {
        let engine =
            PolicyEngine::from_yaml_str("admin_or_owner: \"is_admin:True\"\n", FILE).unwrap();
        assert!(!engine.check(rules::OPERATIONS_INDEX, &member("p1"), &owned_by("p1")));
        assert!(!engine.check(rules::MEMBERS_CREATE, &member("p1"), &owned_by("p1")));
    }

    #[test]
    fn file_rules_may_define_new_names_and_use_them() {
        let engine = PolicyEngine::from_yaml_str(
            "dr_operator: \"role:dr_operator and rule:admin_or_owner\"\n\
             \"protector:protection_groups:failover\": \"rule:dr_operator\"\n",
            FILE,
        )
        .unwrap();
        let rule = rules::PROTECTION_GROUPS_FAILOVER;
        let own = owned_by("p1");
        assert!(!engine.check(rule, &member("p1"), &own));
        let operator = RequestContext::new("u", "p1", &["member", "dr_operator"]);
        assert!(engine.check(rule, &operator, &own));
        assert!(!engine.check(rule, &operator, &owned_by("p2")));
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_regroup() {
        let engine = PolicyEngine::from_yaml_str(
            "loose: \"role:a or role:b and role:c\"\n\
             grouped: \"(role:a or role:b) and role:c\"\n",
            FILE,
        )
        .unwrap();
        let only_a = RequestContext::new("u", "p1", &["a"]);
        let t = Target::new();
        assert!(engine.check("loose", &only_a, &t));
        assert!(!engine.check("grouped", &only_a, &t));
        let b_and_c = RequestContext::new("u", "p1", &["b", "c"]);
        assert!(engine.check("loose", &b_and_c, &t));
        assert!(engine.check("grouped", &b_and_c, &t));
    }

    #[test]
    fn not_excludes_a_role_from_an_otherwise_allowed_rule() {
        let engine = PolicyEngine::from_yaml_str(
            "\"protector:protection_groups:delete\": \"rule:admin_or_owner and not role:reader\"\n",
            FILE,
        )
        .unwrap();
        let rule = rules::PROTECTION_GROUPS_DELETE;
        let reader = RequestContext::new("u", "p1", &["member", "reader"]);
        assert!(!engine.check(rule, &reader, &owned_by("p1")));
        assert!(engine.check(rule, &member("p1"), &owned_by("p1")));
    }

    #[test]
    fn always_and_never_rules_apply_to_anyone() {
        let engine = PolicyEngine::from_yaml_str(
            "\"protector:health:show\": \"@\"\n\"protector:sites:index\": \"!\"\n\
             \"protector:members:index\": \"\"\n",
            FILE,
        )
        .unwrap();
        let stranger = member("p9");
        assert!(engine.check(rules::HEALTH_SHOW, &stranger, &owned_by("p1")));
        assert!(engine.check(rules::MEMBERS_INDEX, &stranger, &owned_by("p1")));
        assert!(!engine.check(rules::SITES_INDEX, &admin(), &owned_by("p1")));
    }

    #[test]
    fn empty_or_comment_only_file_keeps_the_defaults() {
        for text in ["", "# nothing here\n", "{}"] {
            let engine = PolicyEngine::from_yaml_str(text, FILE).unwrap();
            assert!(engine.check(rules::OPERATIONS_INDEX, &member("p1"), &owned_by("p1")));
            assert!(!engine.check(rules::SITES_CREATE, &member("p1"), &owned_by("p1")));
        }
    }

    #[test]
    fn malformed_yaml_names_the_file() {
        let err = load_err("\"protector:operations:index\": [unclosed\n");
        assert!(
            err.starts_with("policy file /etc/protector/policy.yaml is not valid YAML: "),
            "{err}"
        );
        let dup = load_err("a: \"@\"\na: \"!\"\n");
        assert!(dup.contains("duplicate"), "{dup}");
    }

    #[test]
    fn a_document_that_is_not_a_map_is_refused() {
        assert_eq!(
            load_err("- \"rule:default\"\n"),
            "policy file /etc/protector/policy.yaml must be a map of rule name to rule string, not a list"
        );
    }

    #[test]
    fn non_string_names_and_values_are_refused() {
        assert_eq!(
            load_err("42: \"@\"\n"),
            "policy file /etc/protector/policy.yaml: rule name 42 is not a string"
        );
        assert_eq!(
            load_err("\"protector:operations:index\": 1\n"),
            "policy file /etc/protector/policy.yaml: rule protector:operations:index must be a string, not a number"
        );
        assert_eq!(
            load_err("\"protector:operations:index\": [\"role:admin\"]\n"),
            "policy file /etc/protector/policy.yaml: rule protector:operations:index must be a string, not a list"
        );
        assert_eq!(
            load_err("\"protector:operations:index\":\n"),
            "policy file /etc/protector/policy.yaml: rule protector:operations:index must be a string, not null"
        );
    }

    #[test]
    fn syntax_errors_name_the_file_the_rule_and_the_problem() {
        let cases = [
            (
                "admin_or_owner: \"(is_admin:True or project_id:%(project_id)s\"",
                "policy file /etc/protector/policy.yaml: rule admin_or_owner: unbalanced parenthesis: 1 '(' never closed",
            ),
            (
                "admin_or_owner: \"is_admin:True) or project_id:%(project_id)s\"",
                "policy file /etc/protector/policy.yaml: rule admin_or_owner: unbalanced parenthesis: ')' without a matching '('",
            ),
            (
                "\"protector:sites:index\": \"tenant:%(project_id)s\"",
                "policy file /etc/protector/policy.yaml: rule protector:sites:index: unknown check kind 'tenant' in 'tenant:%(project_id)s': expected rule, role, is_admin, project_id, user_id, roles or a quoted literal",
            ),
            (
                "\"protector:sites:index\": \"role:\"",
                "policy file /etc/protector/policy.yaml: rule protector:sites:index: empty 'role:' check: 'role:' needs a value",
            ),
            (
                "\"protector:sites:index\": \"role:admin and\"",
                "policy file /etc/protector/policy.yaml: rule protector:sites:index: rule ends where a check was expected",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(load_err(text), message);
        }
    }

    #[test]
    fn syntax_errors_carry_the_problem_as_data() {
        let err = PolicyEngine::from_yaml_str("x: \"role:\"", FILE).unwrap_err();
        assert!(matches!(
            err,
            PolicyError::Syntax { ref rule, problem: crate::policy::RuleSyntaxError::EmptyMatch { ref kind }, .. }
                if rule == "x" && kind == "role"
        ));
    }

    #[test]
    fn reference_to_an_undefined_rule_names_the_referencing_rule() {
        assert_eq!(
            load_err("\"protector:operations:index\": \"rule:admin_or_ownr\""),
            "policy file /etc/protector/policy.yaml: rule protector:operations:index references undefined rule admin_or_ownr"
        );
    }

    #[test]
    fn reference_cycles_are_refused() {
        assert_eq!(
            load_err("a: \"rule:b\"\nb: \"role:x or rule:a\"\n"),
            "policy file /etc/protector/policy.yaml: rule a is part of a reference cycle: a -> b -> a"
        );
        assert_eq!(
            load_err("selfish: \"not rule:selfish\"\n"),
            "policy file /etc/protector/policy.yaml: rule selfish is part of a reference cycle: selfish -> selfish"
        );
    }

    #[test]
    fn cycles_through_defaults_name_the_rule_the_file_changed() {
        assert_eq!(
            load_err("admin_or_owner: \"rule:default\"\n"),
            "policy file /etc/protector/policy.yaml: rule admin_or_owner is part of a reference cycle: admin_or_owner -> default -> admin_or_owner"
        );
    }

    #[test]
    fn reference_chains_longer_than_the_limit_are_refused() {
        let chain = |len: usize| {
            let mut text = String::new();
            for i in 0..len {
                text.push_str(&format!("r{i:03}: \"rule:r{:03}\"\n", i + 1));
            }
            text.push_str(&format!("r{len:03}: \"@\"\n"));
            text
        };
        let ok = PolicyEngine::from_yaml_str(&chain(MAX_REFERENCE_DEPTH), FILE).unwrap();
        assert!(ok.check("r000", &member("p1"), &Target::new()));
        let err = PolicyEngine::from_yaml_str(&chain(MAX_REFERENCE_DEPTH + 1), FILE).unwrap_err();
        assert!(
            matches!(err, PolicyError::TooDeep { ref rule, limit, .. } if rule == "r000" && limit == MAX_REFERENCE_DEPTH),
            "{err}"
        );
        // A long cycle is refused too, whichever way it is reported.
        let mut cycle = chain(200);
        cycle.push_str("r200x: \"rule:r000\"\n");
        let looped = cycle.replace("r200: \"@\"", "r200: \"rule:r000\"");
        assert!(PolicyEngine::from_yaml_str(&looped, FILE).is_err());
    }

    #[test]
    fn load_reads_the_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(
            &path,
            "\"protector:operations:index\": \"rule:admin_api\"\n",
        )
        .unwrap();
        let engine = PolicyEngine::load(&path).unwrap();
        assert!(!engine.check(rules::OPERATIONS_INDEX, &member("p1"), &owned_by("p1")));

        std::fs::write(&path, "x: \"rule:nope\"\n").unwrap();
        let err = PolicyEngine::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("policy file {}: rule x", path.display())),
            "{err}"
        );

        let missing = dir.path().join("absent.yaml");
        let err = PolicyEngine::load(&missing).unwrap_err();
        assert!(matches!(err, PolicyError::Read { .. }));
        assert_eq!(
            err.to_string(),
            format!("cannot read policy file {}", missing.display())
        );
    }

    fn arb_context() -> impl Strategy<Value = RequestContext> {
        (
            prop::sample::select(vec!["u1", "u2"]),
            prop::sample::select(vec!["p1", "p2"]),
            prop::sample::subsequence(vec!["a", "b", "admin", "member"], 0..=4),
        )
            .prop_map(|(user, project, roles)| RequestContext::new(user, project, &roles))
    }

    fn arb_target() -> impl Strategy<Value = Target> {
        (
            prop::option::of(prop::sample::select(vec!["p1", "p2"])),
            prop::option::of(prop::sample::select(vec!["u1", "u2"])),
        )
            .prop_map(|(project, user)| {
                let mut target = Target::new();
                if let Some(p) = project {
                    target.insert("project_id", p);
                }
                if let Some(u) = user {
                    target.insert("user_id", u);
                }
                target
            })
    }

    proptest! {
        #[test]
        fn double_negation_changes_nothing(
            expr in arb_expr(),
            ctx in arb_context(),
            target in arb_target(),
        ) {
            let text = expr.to_string();
            let file: BTreeMap<String, String> = BTreeMap::from([
                ("x".to_owned(), text.clone()),
                ("not_not_x".to_owned(), format!("not not ({text})")),
            ]);
            let yaml = serde_yaml_ng::to_string(&file).unwrap();
            let engine = PolicyEngine::from_yaml_str(&yaml, FILE).unwrap();
            prop_assert_eq!(
                engine.check("not_not_x", &ctx, &target),
                engine.check("x", &ctx, &target)
            );
        }

        #[test]
        fn loader_never_panics_on_arbitrary_text(text in ".*") {
            let _ = PolicyEngine::from_yaml_str(&text, FILE);
        }

        #[test]
        fn loader_never_panics_on_arbitrary_rule_strings(rule in ".*") {
            let file = BTreeMap::from([("protector:operations:index".to_owned(), rule)]);
            let yaml = serde_yaml_ng::to_string(&file).unwrap();
            if let Ok(engine) = PolicyEngine::from_yaml_str(&yaml, FILE) {
                let _ = engine.check(rules::OPERATIONS_INDEX, &member("p1"), &owned_by("p1"));
            }
        }
    }
}
