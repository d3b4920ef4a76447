//! oslo.policy-compatible rule evaluation for `protector:*` rules.
//!
//! Every public entry point of protector asks a [`PolicyEngine`] whether the caller
//! (a [`RequestContext`](crate::RequestContext)) may perform an action (a rule name
//! from [`rules`]) on a [`Target`] (the attributes of the resource, above all the
//! `project_id` that owns it). The rules are the product's defaults
//! ([`defaults()`]) with the operator's `/etc/protector/policy.yaml` overlaid, written in
//! the oslo.policy language the rest of OpenStack uses:
//!
//! | syntax | passes when |
//! |---|---|
//! | `rule:<name>` | rule `<name>` passes |
//! | `role:<name>` | the caller has role `<name>` (case-insensitive) |
//! | `is_admin:True`, `is_admin:False` | the caller has (has not) the `admin` role |
//! | `project_id:%(project_id)s`, `user_id:%(user_id)s` | the caller's credential equals the target's value |
//! | `project_id:<literal>`, `roles:<literal>` | the credential equals (the role list holds) the literal |
//! | `'<literal>':%(<key>)s` | the target's value equals the literal |
//! | `@`, the empty string / `!` | always / never |
//! | `not`, `and`, `or`, `( … )` | as usual; `not` binds tighter than `and`, `and` tighter than `or` |
//!
//! # Expected flow
//!
//! 1. At start-up, [`PolicyEngine::load`] reads `policy.yaml` (or
//!    [`PolicyEngine::with_defaults`] when there is none). A broken file is refused
//!    with a [`PolicyError`](crate::PolicyError) that names the file, the rule and what
//!    is wrong.
//! 2. Per request, the API layer builds the target (for protection groups and
//!    operations, [`Target::project`] of the owning project) and calls
//!    [`PolicyEngine::enforce`] with the rule's constant, returning its
//!    [`Error::Forbidden`](crate::Error::Forbidden) to the caller (HTTP 403).
//!
//! ```
//! use protector_core::ids::ProjectId;
//! use protector_core::policy::{rules, PolicyEngine, Target};
//! use protector_core::RequestContext;
//!
//! let engine = PolicyEngine::with_defaults();
//! let alice = RequestContext::new("alice", "proj-a", &["member"]);
//! let own = Target::project(&alice.project_id);
//! let foreign = Target::project(&ProjectId::new("proj-b"));
//!
//! // A member of the owning project reads its operations; nobody else's.
//! assert!(engine.enforce(rules::OPERATIONS_INDEX, &alice, &own).is_ok());
//! let denied = engine.enforce(rules::OPERATIONS_INDEX, &alice, &foreign).unwrap_err();
//! assert_eq!(
//!     denied.to_string(),
//!     "Policy doesn't allow protector:operations:index to be performed."
//! );
//!
//! // An operator who wants operations visible to admins only says so in policy.yaml.
//! let engine = PolicyEngine::from_yaml_str(
//!     r#""protector:operations:index": "rule:admin_api""#,
//!     "/etc/protector/policy.yaml",
//! )?;
//! assert!(!engine.check(rules::OPERATIONS_INDEX, &alice, &own));
//! # Ok::<(), protector_core::PolicyError>(())
//! ```
//!
//! # Guarantees
//!
//! - Every rule is parsed, and every `rule:` reference resolved, when the engine is
//!   built: undefined references, reference cycles, chains longer than
//!   [`MAX_REFERENCE_DEPTH`] and nesting deeper than [`MAX_NESTING`] are load-time
//!   errors. Enforcement itself cannot fail or recurse without bound.
//! - No input panics the parser or the loader.
//! - A rule name that is not defined at all is decided by the `default` rule
//!   (`admin_or_owner` unless overridden), as in oslo.policy; so is the engine's answer
//!   for a `protector:*` rule a newer release adds before its default is known here.
//! - A check that references a target key the target lacks does not match.
//!
//! # Caveats
//!
//! - A subset of oslo.policy: the credentials are `project_id`, `user_id`, `roles` and
//!   `is_admin` only, with `is_admin` meaning "has the `admin` role" (overriding
//!   `context_is_admin` does not change it). Remote `http:` checks and the legacy
//!   list-of-lists syntax are refused rather than ignored.
//! - Where oslo.policy logs an unparsable rule and treats it as "never", this engine
//!   refuses the whole file, so a typo cannot silently lock tenants out.
//! - Keystone role names compare case-insensitively in `role:`; the `roles:` credential
//!   compares exactly, as oslo.policy's generic check does.

mod defaults;
pub use defaults::{defaults, sample_policy_yaml, RuleDefault};
mod engine;
pub use engine::PolicyEngine;
mod eval;
pub use eval::MAX_REFERENCE_DEPTH;
mod parse;
pub use parse::{RuleSyntaxError, MAX_NESTING};
pub mod rules;
mod target;
pub use target::Target;
