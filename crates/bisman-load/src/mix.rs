//! The operations of the load and how often each is picked.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// One kind of request the load makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `POST /auth/login` (then the previous session is logged out).
    Login,
    /// `POST /auth/logout` of the session a login replaced.
    Logout,
    /// `GET /permissions/check`.
    Check,
    /// `GET /threads/{id}/messages?limit=50`.
    Page,
    /// `POST /messages/{id}/read` or `POST /threads/{id}/read`.
    Read,
    /// `POST /messages/{id}/reactions`.
    React,
    /// `POST /threads/{id}/messages`.
    Post,
    /// The prober's role edits (`PUT /admin/roles/{id}/permissions`).
    RoleEdit,
    /// `GET /threads`.
    Threads,
    /// `GET /threads/unread`.
    Unread,
    /// `GET /messages/{id}/reads`.
    Readers,
    /// `GET /messages/{id}/reactions`.
    Reactions,
    /// `GET /usage-events/summary` (403 for accounts without `reports/usage`).
    Summary,
    /// `GET /approvals/pending` (403 for accounts without `expenses/approvals`).
    Approvals,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 14] = [
        Op::Login,
        Op::Logout,
        Op::Check,
        Op::Page,
        Op::Read,
        Op::React,
        Op::Post,
        Op::RoleEdit,
        Op::Threads,
        Op::Unread,
        Op::Readers,
        Op::Reactions,
        Op::Summary,
        Op::Approvals,
    ];

    /// The operations a mix may pick (logouts and role edits follow others).
    pub const PICKABLE: [Op; 12] = [
        Op::Login,
        Op::Check,
        Op::Page,
        Op::Read,
        Op::React,
        Op::Post,
        Op::Threads,
        Op::Unread,
        Op::Readers,
        Op::Reactions,
        Op::Summary,
        Op::Approvals,
    ];

    /// Its name in mixes and reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Logout => "logout",
            Op::Check => "check",
            Op::Page => "page",
            Op::Read => "read",
            Op::React => "react",
            Op::Post => "post",
            Op::RoleEdit => "role_edit",
            Op::Threads => "threads",
            Op::Unread => "unread",
            Op::Readers => "readers",
            Op::Reactions => "reactions",
            Op::Summary => "summary",
            Op::Approvals => "approvals",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Relative weights of the operations workers pick (the prober's role edits
/// and the logouts that follow logins are not picked, they follow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// (operation, weight), weights > 0.
    pub weights: Vec<(Op, u32)>,
}

impl Default for Mix {
    /// Mostly reads and checks, as an ERP's traffic is: login 2, check 40,
    /// page 20, read 14, react 12, post 12.
    fn default() -> Self {
        DEFAULT_MIX.parse().expect("the default mix parses")
    }
}

/// The default mix: mostly permission checks, pages and writes.
pub const DEFAULT_MIX: &str = "login=2,check=40,page=20,read=14,react=12,post=12";

/// The read-heavy mix (`--mix read-heavy`): what read replicas take, with
/// one request in eight a write: message pages, unread counts, readers,
/// reactions, thread lists, usage summaries and approval lists, beside
/// checks and the writes that make read-your-writes matter.
pub const READ_HEAVY_MIX: &str = "login=1,check=10,page=30,threads=5,unread=15,readers=8,reactions=8,summary=5,approvals=5,read=3,react=4,post=6";

impl Mix {
    /// The operation a number in `0..total()` stands for.
    pub fn pick(&self, mut n: u32) -> Op {
        for (op, w) in &self.weights {
            if n < *w {
                return *op;
            }
            n -= w;
        }
        self.weights[0].0
    }

    /// The sum of the weights.
    pub fn total(&self) -> u32 {
        self.weights.iter().map(|(_, w)| w).sum()
    }
}

impl FromStr for Mix {
    type Err = String;

    /// `login=2,check=40,…` (operations left out are not made), or a named
    /// mix: `default`, `read-heavy`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "default" => return DEFAULT_MIX.parse(),
            "read-heavy" => return READ_HEAVY_MIX.parse(),
            _ => {}
        }
        let mut weights = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected op=weight"))?;
            let op = Op::PICKABLE
                .into_iter()
                .find(|o| o.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Op::PICKABLE.iter().map(|o| o.name()).collect();
                    format!("{name:?}: operations are {}", names.join(", "))
                })?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
            if weights.iter().any(|(o, _)| *o == op) {
                return Err(format!("{name:?} is listed twice"));
            }
            if w > 0 {
                weights.push((op, w));
            }
        }
        if weights.is_empty() {
            return Err("the mix needs at least one operation with a weight above 0".into());
        }
        Ok(Mix { weights })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_picks_by_weight() {
        let m: Mix = "check=3,post=1".parse().unwrap();
        assert_eq!(m.total(), 4);
        assert_eq!(
            (0..4).map(|n| m.pick(n)).collect::<Vec<_>>(),
            [Op::Check, Op::Check, Op::Check, Op::Post]
        );
        assert_eq!(Mix::default().total(), 100);
        let heavy: Mix = "read-heavy".parse().unwrap();
        assert_eq!(heavy.total(), 100);
        assert_eq!("default".parse::<Mix>().unwrap(), Mix::default());
        for bad in [
            "",
            "check",
            "check=x",
            "nope=1",
            "check=1,check=2",
            "check=0",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
    }
}
