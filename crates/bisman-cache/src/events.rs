//! Spec §4's invalidation events, and what each one does.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{CacheError, Result};
use crate::ids::{SuperAdminId, UserId};
use crate::sync::Delivery;
use crate::Cache;

/// The events of spec §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvalidationEvent {
    /// A user's roles changed (role assignment). Id: the user.
    UserPermissionsChanged,
    /// A super admin's modules changed. Id: the super admin.
    ModuleAssignmentsChanged,
    /// A user logged out. Id: the user; their cached sessions are dropped
    /// (the logout itself revokes its session in PostgreSQL).
    UserLoggedOut,
    /// A user's password changed. Id: the user; all their sessions end.
    UserPasswordChanged,
    /// A super admin was deactivated. Id: the super admin; their users lose
    /// the modules at once and the super admin's own sessions end.
    SuperAdminDeactivated,
}

impl InvalidationEvent {
    /// Every event.
    pub const ALL: [InvalidationEvent; 5] = [
        InvalidationEvent::UserPermissionsChanged,
        InvalidationEvent::ModuleAssignmentsChanged,
        InvalidationEvent::UserLoggedOut,
        InvalidationEvent::UserPasswordChanged,
        InvalidationEvent::SuperAdminDeactivated,
    ];

    /// The spec's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationEvent::UserPermissionsChanged => "USER_PERMISSIONS_CHANGED",
            InvalidationEvent::ModuleAssignmentsChanged => "MODULE_ASSIGNMENTS_CHANGED",
            InvalidationEvent::UserLoggedOut => "USER_LOGGED_OUT",
            InvalidationEvent::UserPasswordChanged => "USER_PASSWORD_CHANGED",
            InvalidationEvent::SuperAdminDeactivated => "SUPER_ADMIN_DEACTIVATED",
        }
    }
}

impl fmt::Display for InvalidationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InvalidationEvent {
    type Err = CacheError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| CacheError::Config(format!("unknown invalidation event {s:?}")))
    }
}

/// What an invalidation did.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidationReport {
    /// The event.
    pub event: InvalidationEvent,
    /// The id it was about.
    pub id: i32,
    /// Sessions ended in PostgreSQL.
    pub sessions_ended: u64,
    /// How the near-caches were reached.
    pub deliveries: Vec<Delivery>,
}

impl Cache {
    /// Spec §4 `invalidate(event, id)`. Call it after the change committed;
    /// it returns once no instance serves what the change revoked.
    #[tracing::instrument(skip(self))]
    pub async fn invalidate(
        &self,
        event: InvalidationEvent,
        id: i32,
    ) -> Result<InvalidationReport> {
        let (sessions, permissions) = (self.sessions(), self.permissions());
        let mut report = InvalidationReport {
            event,
            id,
            sessions_ended: 0,
            deliveries: Vec::new(),
        };
        match event {
            InvalidationEvent::UserPermissionsChanged => {
                report
                    .deliveries
                    .push(permissions.invalidate_user_permissions(UserId(id)).await?);
            }
            InvalidationEvent::ModuleAssignmentsChanged => {
                report.deliveries.push(
                    permissions
                        .invalidate_super_admin_permissions(SuperAdminId(id))
                        .await?,
                );
            }
            InvalidationEvent::UserLoggedOut => {
                report
                    .deliveries
                    .push(sessions.forget_user_sessions(UserId(id)).await?);
            }
            InvalidationEvent::UserPasswordChanged => {
                report.sessions_ended = sessions.invalidate_user_sessions(UserId(id), None).await?;
            }
            InvalidationEvent::SuperAdminDeactivated => {
                report.deliveries.push(
                    permissions
                        .invalidate_super_admin_permissions(SuperAdminId(id))
                        .await?,
                );
                if let Some(user) =
                    crate::permissions::super_admin_user(&self.inner.pool, SuperAdminId(id)).await?
                {
                    report.sessions_ended = sessions.invalidate_user_sessions(user, None).await?;
                }
            }
        }
        Ok(report)
    }
}
