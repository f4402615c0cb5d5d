//! Newtypes for everything that could be confused: user ids vs super-admin
//! ids vs role ids, raw session tokens vs their hashes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// `users.id`.
    UserId
);
int_id!(
    /// `super_admins.id` (not the super admin's user id).
    SuperAdminId
);
int_id!(
    /// `roles.id`.
    RoleId
);

/// `tenants.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub uuid::Uuid);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The ERP's user types (`users.user_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserType {
    /// Owns a tenant's module assignments; holds every page of them.
    SuperAdmin,
    /// Tenant administrator (pages through roles).
    Admin,
    /// Manager (pages through roles).
    Manager,
    /// Staff member (pages through roles).
    Staff,
}

impl UserType {
    /// The database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::SuperAdmin => "SUPER_ADMIN",
            UserType::Admin => "ADMIN",
            UserType::Manager => "MANAGER",
            UserType::Staff => "STAFF",
        }
    }
}

impl fmt::Display for UserType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown user type.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown user type {0:?}")]
pub struct UnknownUserType(pub String);

impl FromStr for UserType {
    type Err = UnknownUserType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SUPER_ADMIN" => Ok(UserType::SuperAdmin),
            "ADMIN" => Ok(UserType::Admin),
            "MANAGER" => Ok(UserType::Manager),
            "STAFF" => Ok(UserType::Staff),
            other => Err(UnknownUserType(other.to_string())),
        }
    }
}

/// A raw session or refresh token: 256 bits from the operating system's
/// CSPRNG, hex-encoded. It exists only in the client's hands and in this
/// value; it is never stored or logged (its `Debug` is redacted), only its
/// [`TokenHash`].
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// Bytes of entropy in a token.
    pub const BYTES: usize = 32;

    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
        Self(hex::encode(bytes))
    }

    /// Parses a token presented by a client: exactly 64 lowercase hex digits.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == Self::BYTES * 2
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(raw.to_string()))
    }

    /// The token, to hand to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// SHA-256 of a [`SessionToken`]: what `user_sessions` and the caches key by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Lowercase hex, as stored in `user_sessions.token_hash`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but a prefix is all a log needs.
        write!(f, "TokenHash({}…)", &self.to_hex()[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hashed_and_redacted() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert_eq!(SessionToken::parse(a.expose()), Some(a.clone()));
        assert_eq!(SessionToken::parse("xyz"), None);
        assert_eq!(SessionToken::parse(&"A".repeat(64)), None);
        assert!(!format!("{a:?}").contains(a.expose()));
        let h = a.hash();
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_ne!(h.to_hex(), a.expose());
    }

    #[test]
    fn user_types_round_trip() {
        for t in [
            UserType::SuperAdmin,
            UserType::Admin,
            UserType::Manager,
            UserType::Staff,
        ] {
            assert_eq!(t.as_str().parse::<UserType>().unwrap(), t);
        }
        assert!("ROOT".parse::<UserType>().is_err());
    }
}
