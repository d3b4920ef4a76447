//! The request context every public entry point takes.

use serde::{Deserialize, Serialize};

use crate::ids::{ProjectId, UserId};

/// Who is asking: the Keystone identity of the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The user.
    pub user_id: UserId,
    /// The project the token is scoped to.
    pub project_id: ProjectId,
    /// Role names on that project.
    pub roles: Vec<String>,
}

impl RequestContext {
    /// A context for a user in a project with the given roles.
    pub fn new(user: impl Into<UserId>, project: impl Into<ProjectId>, roles: &[&str]) -> Self {
        Self {
            user_id: user.into(),
            project_id: project.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    /// Whether the caller has `role` (case-insensitive, as Keystone compares).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// Whether the caller is an admin (`admin` role), oslo.policy's `is_admin`.
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }
}
