//! Keys, built from typed parts only.
//!
//! A value and the generation counter guarding it share a Redis Cluster hash
//! tag (`{u:42}`), so that the conditional fill can read one and write the
//! other atomically on whichever node owns them.

use serde::{Deserialize, Serialize};

use crate::ids::{RoleId, SuperAdminId, TokenHash, UserId};

/// The spec's cache namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// Sessions by token hash.
    Sessions,
    /// A user's list of sessions (the refresh-token lifetime).
    RefreshTokens,
    /// A user's effective permissions.
    UserPermissions,
    /// A role's page permissions.
    RolePermissions,
    /// A super admin's module assignments.
    ModuleAssignments,
}

impl Namespace {
    /// Every namespace.
    pub const ALL: [Namespace; 5] = [
        Namespace::Sessions,
        Namespace::RefreshTokens,
        Namespace::UserPermissions,
        Namespace::RolePermissions,
        Namespace::ModuleAssignments,
    ];

    /// Its name in keys, metrics and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Sessions => "sessions",
            Namespace::RefreshTokens => "refresh_tokens",
            Namespace::UserPermissions => "user_permissions",
            Namespace::RolePermissions => "role_permissions",
            Namespace::ModuleAssignments => "module_assignments",
        }
    }

    /// Index in [`Namespace::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a generation counter guards: everything cached about one user, role
/// or super admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "t", content = "id", rename_all = "snake_case")]
pub enum Scope {
    /// A user's permissions.
    User(UserId),
    /// A user's sessions.
    UserSessions(UserId),
    /// A role's page permissions.
    Role(RoleId),
    /// A super admin's module assignments.
    SuperAdmin(SuperAdminId),
}

impl Scope {
    fn tag(self) -> String {
        match self {
            Scope::User(u) | Scope::UserSessions(u) => format!("{{u:{u}}}"),
            Scope::Role(r) => format!("{{r:{r}}}"),
            Scope::SuperAdmin(s) => format!("{{sa:{s}}}"),
        }
    }
}

/// Builds every key under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (validated by [`crate::CacheConfig::validate`]).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A session, by the SHA-256 of its token.
    pub fn session(&self, hash: &TokenHash) -> String {
        format!("{}sess:{}", self.prefix, hash.to_hex())
    }

    /// The set of a user's session token hashes.
    pub fn user_sessions(&self, user: UserId) -> String {
        format!(
            "{}sessions:{}",
            self.prefix,
            Scope::UserSessions(user).tag()
        )
    }

    /// A user's effective permissions.
    pub fn user_permissions(&self, user: UserId) -> String {
        format!("{}perm:{}", self.prefix, Scope::User(user).tag())
    }

    /// A role's page permissions.
    pub fn role_permissions(&self, role: RoleId) -> String {
        format!("{}role:{}", self.prefix, Scope::Role(role).tag())
    }

    /// A super admin's modules.
    pub fn module_assignments(&self, sa: SuperAdminId) -> String {
        format!("{}modules:{}", self.prefix, Scope::SuperAdmin(sa).tag())
    }

    /// The generation counter of a scope.
    pub fn generation(&self, scope: Scope) -> String {
        let kind = if matches!(scope, Scope::UserSessions(_)) {
            "sgen"
        } else {
            "gen"
        };
        format!("{}{kind}:{}", self.prefix, scope.tag())
    }

    /// The value key a scope's generation guards.
    pub fn value_of(&self, scope: Scope) -> String {
        match scope {
            Scope::User(u) => self.user_permissions(u),
            Scope::UserSessions(u) => self.user_sessions(u),
            Scope::Role(r) => self.role_permissions(r),
            Scope::SuperAdmin(s) => self.module_assignments(s),
        }
    }

    /// The invalidation channel.
    pub fn bus_channel(&self) -> String {
        format!("{}{{bus}}:events", self.prefix)
    }

    /// The registry of live instances.
    pub fn instances(&self) -> String {
        format!("{}{{bus}}:instances", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_share_a_hash_tag_with_their_generation() {
        let k = Keys::new("p:");
        assert_eq!(k.user_permissions(UserId(42)), "p:perm:{u:42}");
        assert_eq!(k.generation(Scope::User(UserId(42))), "p:gen:{u:42}");
        assert_eq!(
            k.generation(Scope::UserSessions(UserId(42))),
            "p:sgen:{u:42}"
        );
        assert_eq!(k.role_permissions(RoleId(7)), "p:role:{r:7}");
        assert_eq!(k.module_assignments(SuperAdminId(3)), "p:modules:{sa:3}");
        assert_eq!(k.bus_channel(), "p:{bus}:events");
        for scope in [
            Scope::User(UserId(1)),
            Scope::Role(RoleId(1)),
            Scope::SuperAdmin(SuperAdminId(1)),
        ] {
            let tag = |s: &str| s[s.find('{').unwrap()..=s.find('}').unwrap()].to_string();
            assert_eq!(tag(&k.generation(scope)), tag(&k.value_of(scope)));
        }
    }
}
