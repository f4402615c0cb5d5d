//! What a user may do: modules, their pages, and actions on each page.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{RoleId, SuperAdminId, TenantId, UserId, UserType};

/// An action on a page (`role_permissions.actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// See it.
    View,
    /// Create through it.
    Create,
    /// Edit through it.
    Edit,
    /// Delete through it.
    Delete,
    /// Approve through it.
    Approve,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [
        Action::View,
        Action::Create,
        Action::Edit,
        Action::Delete,
        Action::Approve,
    ];

    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Create => "create",
            Action::Edit => "edit",
            Action::Delete => "delete",
            Action::Approve => "approve",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Pages of a module and the actions allowed on each.
pub type Pages = BTreeMap<String, BTreeSet<Action>>;

/// A user's effective permissions, computed from the ERP's tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// The user.
    pub user_id: UserId,
    /// Their tenant.
    pub tenant_id: TenantId,
    /// Their type, as the database says (not as the caller claimed).
    pub user_type: UserType,
    /// Module key → page key → actions.
    pub modules: BTreeMap<String, Pages>,
}

impl Permissions {
    /// Whether any page of `module` is allowed.
    pub fn has_module(&self, module: &str) -> bool {
        self.modules.get(module).is_some_and(|p| !p.is_empty())
    }

    /// Whether `page` of `module` is allowed (with any action).
    pub fn has_page(&self, module: &str, page: &str) -> bool {
        self.modules
            .get(module)
            .and_then(|p| p.get(page))
            .is_some_and(|a| !a.is_empty())
    }

    /// Whether `action` on `page` of `module` is allowed.
    pub fn allows(&self, module: &str, page: &str, action: Action) -> bool {
        self.modules
            .get(module)
            .and_then(|p| p.get(page))
            .is_some_and(|a| a.contains(&action))
    }
}

/// The page permissions one role grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolePermissions {
    /// The role.
    pub role_id: RoleId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Module key → page key → actions.
    pub modules: BTreeMap<String, Pages>,
}

/// The modules assigned to a super admin, with every page of each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleAssignments {
    /// The super admin.
    pub super_admin_id: SuperAdminId,
    /// Their tenant.
    pub tenant_id: TenantId,
    /// Whether the super admin is active (an inactive one grants nothing).
    pub active: bool,
    /// Module key → its pages.
    pub modules: BTreeMap<String, BTreeSet<String>>,
}
