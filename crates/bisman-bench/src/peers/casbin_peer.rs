//! casbin: an in-memory RBAC enforcer with the data set's roles.

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};

use crate::data::Dataset;
use crate::error::{BenchError, Result};
use crate::measure::workload::Workload;
use crate::measure::{probe, Probe};

/// Plain RBAC: a user holds roles; a role may do an action on an object.
const MODEL: &str = r#"
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"#;

fn peer(e: impl std::fmt::Display) -> BenchError {
    BenchError::Peer {
        peer: "casbin",
        message: e.to_string(),
    }
}

/// The enforcer and the workload's checks as casbin requests.
pub(super) struct CasbinPeer {
    enforcer: Enforcer,
    requests: Vec<(String, String, String)>,
    policies: usize,
    groups: usize,
    agree: usize,
}

impl CasbinPeer {
    /// Loads the roles and checks that casbin decides as we do.
    pub(super) async fn set_up(
        after: &Dataset,
        work: &Workload,
        decisions: &[bool],
    ) -> Result<Self> {
        // A role's pages, bounded by the modules of its tenant's super admin
        // (one per tenant in the data set): what our resolution grants.
        let policies: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT 'role:' || r.id, m.key || '/' || p.key, a
             FROM role_permissions rp
             JOIN roles r ON r.id = rp.role_id
             JOIN pages p ON p.id = rp.page_id
             JOIN modules m ON m.id = p.module_id
             CROSS JOIN unnest(rp.actions) a
             WHERE EXISTS (SELECT 1 FROM super_admins s
                           JOIN super_admin_modules sam ON sam.super_admin_id = s.id
                           WHERE s.tenant_id = r.tenant_id AND s.is_active AND sam.module_id = m.id)
             ORDER BY 1, 2, 3",
        )
        .fetch_all(&after.pool)
        .await?;
        let groups: Vec<(String, String)> = sqlx::query_as(
            "SELECT 'user:' || user_id, 'role:' || role_id FROM user_roles ORDER BY user_id, role_id",
        )
        .fetch_all(&after.pool)
        .await?;
        let model = DefaultModel::from_str(MODEL).await.map_err(peer)?;
        let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
            .await
            .map_err(peer)?;
        let (n_policies, n_groups) = (policies.len(), groups.len());
        enforcer
            .add_policies(
                policies
                    .into_iter()
                    .map(|(s, o, a)| vec![s, o, a])
                    .collect(),
            )
            .await
            .map_err(peer)?;
        enforcer
            .add_grouping_policies(groups.into_iter().map(|(u, r)| vec![u, r]).collect())
            .await
            .map_err(peer)?;
        let requests: Vec<(String, String, String)> = work
            .checks
            .iter()
            .map(|c| {
                (
                    format!("user:{}", c.user_id),
                    format!("{}/{}", c.module, c.page),
                    "view".to_string(),
                )
            })
            .collect();
        let mut agree = 0;
        for (r, ours) in requests.iter().zip(decisions) {
            if enforcer.enforce((&r.0, &r.1, &r.2)).map_err(peer)? == *ours {
                agree += 1;
            }
        }
        Ok(CasbinPeer {
            enforcer,
            requests,
            policies: n_policies,
            groups: n_groups,
            agree,
        })
    }

    /// `enforce(user, module/page, "view")`, rotating through the checks.
    pub(super) fn probe(&self) -> Probe<'_> {
        probe(move |i| {
            let r = &self.requests[i % self.requests.len()];
            let out = self
                .enforcer
                .enforce((&r.0, &r.1, &r.2))
                .map(|_| ())
                .map_err(peer);
            async move { out }
        })
    }

    /// What its row should say.
    pub(super) fn note(&self) -> String {
        format!(
            "{} policies + {} role assignments; decisions agree with ours on {} of {} checks",
            self.policies,
            self.groups,
            self.agree,
            self.requests.len()
        )
    }
}
