//! The permission cache (spec §4): a user's effective permissions,
//! composed from cached role permissions and cached module assignments,
//! each read through the near-cache, the shared store and PostgreSQL.
//!
//! # Resolution rules
//!
//! 1. A user who is inactive, or whose tenant is inactive, has no permissions.
//! 2. Every user is bounded by a super admin's modules: a `SUPER_ADMIN` by
//!    their own `super_admins` row, everyone else by `users.super_admin_id`.
//!    No super admin, a super admin of another tenant, or an inactive one
//!    means no permissions ("a deactivated super admin's users lose the
//!    modules at once").
//! 3. A `SUPER_ADMIN` holds every page of every module assigned to them,
//!    with every action.
//! 4. Anyone else holds the union of the pages and actions of their roles
//!    (`user_roles` → `role_permissions`), counting only roles of their own
//!    tenant and only pages of modules assigned to their super admin.
//! 5. The user type stored in `users` decides, whatever the caller claims.
//!
//! Errors are never grants: when neither the caches nor PostgreSQL can
//! answer, every check returns an error, which the HTTP layer maps to 503.

mod model;
mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::FutureExt;

pub use model::{Action, ModuleAssignments, Pages, Permissions, RolePermissions};

use crate::engine::{Inner, Pending};
use crate::error::Result;
use crate::ids::{RoleId, SuperAdminId, UserId, UserType};
use crate::keys::{Namespace, Scope};
use crate::sync::Delivery;

pub(crate) use source::{super_admin_user, users_of_super_admin, users_with_role};

/// The permission cache of a [`crate::Cache`].
#[derive(Clone)]
pub struct PermissionCache {
    pub(crate) inner: Arc<Inner>,
}

impl PermissionCache {
    /// Spec §4 `getUserPermissionsWithFallback(userId, userType)`: the
    /// user's effective permissions; `None` for an unknown user.
    /// `claimed_type` is only compared with the database, which decides.
    #[tracing::instrument(skip(self))]
    pub async fn get_user_permissions_with_fallback(
        &self,
        user: UserId,
        claimed_type: UserType,
    ) -> Result<Option<Arc<Permissions>>> {
        let perms = self
            .inner
            .read_guarded(
                Namespace::UserPermissions,
                Scope::User(user),
                move |inner| async move { compose(&inner, user).await }.boxed(),
            )
            .await?;
        if let Some(p) = &perms {
            if p.user_type != claimed_type {
                tracing::debug!(%user, claimed = %claimed_type, actual = %p.user_type, "user type changed since the session began");
            }
        }
        Ok(perms)
    }

    /// Spec §4 `hasModulePermission(userId, userType, module)`.
    pub async fn has_module_permission(
        &self,
        user: UserId,
        claimed_type: UserType,
        module: &str,
    ) -> Result<bool> {
        Ok(self
            .get_user_permissions_with_fallback(user, claimed_type)
            .await?
            .is_some_and(|p| p.has_module(module)))
    }

    /// Spec §4 `hasPagePermission(userId, userType, module, page)`.
    pub async fn has_page_permission(
        &self,
        user: UserId,
        claimed_type: UserType,
        module: &str,
        page: &str,
    ) -> Result<bool> {
        Ok(self
            .get_user_permissions_with_fallback(user, claimed_type)
            .await?
            .is_some_and(|p| p.has_page(module, page)))
    }

    /// Whether `action` on `page` of `module` is allowed.
    pub async fn has_action(
        &self,
        user: UserId,
        claimed_type: UserType,
        module: &str,
        page: &str,
        action: Action,
    ) -> Result<bool> {
        Ok(self
            .get_user_permissions_with_fallback(user, claimed_type)
            .await?
            .is_some_and(|p| p.allows(module, page, action)))
    }

    /// A role's page permissions (10-minute namespace).
    pub async fn get_role_permissions(&self, role: RoleId) -> Result<Option<Arc<RolePermissions>>> {
        self.inner
            .read_guarded(
                Namespace::RolePermissions,
                Scope::Role(role),
                move |inner| {
                    async move { source::role_permissions(&inner.pool, role).await }.boxed()
                },
            )
            .await
    }

    /// A super admin's module assignments (15-minute namespace).
    pub async fn get_module_assignments(
        &self,
        sa: SuperAdminId,
    ) -> Result<Option<Arc<ModuleAssignments>>> {
        self.inner
            .read_guarded(
                Namespace::ModuleAssignments,
                Scope::SuperAdmin(sa),
                move |inner| {
                    async move { source::module_assignments(&inner.pool, sa).await }.boxed()
                },
            )
            .await
    }

    /// Spec §4 `invalidateUserPermissions(userId)`: after the user's roles
    /// changed. Returns once no instance serves the old permissions.
    pub async fn invalidate_user_permissions(&self, user: UserId) -> Result<Delivery> {
        Ok(self.invalidate_scopes(vec![Scope::User(user)]).await)
    }

    /// Spec §4 `invalidateSuperAdminPermissions(superAdminId)`: after the
    /// super admin's modules (or status) changed; reaches every user under them.
    pub async fn invalidate_super_admin_permissions(&self, sa: SuperAdminId) -> Result<Delivery> {
        let users = users_of_super_admin(&self.inner.pool, sa).await?;
        Ok(self
            .invalidate_scopes(ordered(Scope::SuperAdmin(sa), users))
            .await)
    }

    /// After a role's page permissions changed: reaches every user holding it.
    pub async fn invalidate_role_permissions(&self, role: RoleId) -> Result<Delivery> {
        let users = users_with_role(&self.inner.pool, role).await?;
        Ok(self
            .invalidate_scopes(ordered(Scope::Role(role), users))
            .await)
    }

    /// Invalidates `scopes` (no sessions end) on every instance.
    async fn invalidate_scopes(&self, scopes: Vec<Scope>) -> Delivery {
        let pending = Pending {
            scopes: scopes.clone(),
            sessions: vec![],
        };
        self.inner.invalidate(pending, &scopes).await
    }
}

/// The shared scope first, then its users: a user's recomputation that
/// starts after its own scope moved reads the shared scope's new value.
fn ordered(first: Scope, users: Vec<UserId>) -> Vec<Scope> {
    std::iter::once(first)
        .chain(users.into_iter().map(Scope::User))
        .collect()
}

/// Composes a user's permissions by the resolution rules above: from the
/// cached role and module layers when there is a cache, in one query when
/// there is none.
async fn compose(inner: &Arc<Inner>, user: UserId) -> Result<Option<Permissions>> {
    if inner.store.is_none() && inner.near.is_none() {
        return source::effective_permissions(&inner.pool, user).await;
    }
    let Some(facts) = source::user_facts(&inner.pool, user).await? else {
        return Ok(None);
    };
    let mut out = Permissions {
        user_id: user,
        tenant_id: facts.tenant_id,
        user_type: facts.user_type,
        modules: BTreeMap::new(),
    };
    let Some(sa) = facts.super_admin.filter(|_| facts.active) else {
        return Ok(Some(out));
    };
    let cache = PermissionCache {
        inner: inner.clone(),
    };
    let Some(assigned) = cache.get_module_assignments(sa).await? else {
        return Ok(Some(out));
    };
    if !assigned.active || assigned.tenant_id != facts.tenant_id {
        return Ok(Some(out));
    }
    if facts.user_type == UserType::SuperAdmin {
        for (module, pages) in &assigned.modules {
            let all: BTreeSet<Action> = Action::ALL.into_iter().collect();
            out.modules.insert(
                module.clone(),
                pages.iter().map(|p| (p.clone(), all.clone())).collect(),
            );
        }
        return Ok(Some(out));
    }
    for role in facts.roles {
        let Some(granted) = cache.get_role_permissions(role).await? else {
            continue;
        };
        if granted.tenant_id != facts.tenant_id {
            continue;
        }
        for (module, pages) in &granted.modules {
            let Some(module_pages) = assigned.modules.get(module) else {
                continue;
            };
            let target = out.modules.entry(module.clone()).or_default();
            for (page, actions) in pages {
                if module_pages.contains(page) && !actions.is_empty() {
                    target
                        .entry(page.clone())
                        .or_default()
                        .extend(actions.iter().copied());
                }
            }
        }
    }
    out.modules.retain(|_, pages| !pages.is_empty());
    Ok(Some(out))
}
