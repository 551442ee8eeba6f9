//! The etcd key layout. Everything of one migration lives under `/c2c/<migration-id>/`:
//!
//! | key | written by | lifetime |
//! | --- | --- | --- |
//! | `leader/<lease-hex>` | etcd election API (`leader` is the election name) | leader lease |
//! | `workers/<worker-id>` | each worker ([`crate::WorkerRegistration`]) | worker lease |
//! | `state` | the leader, fenced | permanent |
//! | `plan` | the leader, fenced | permanent |
//! | `clusters` | the leader, fenced; read by workers | permanent |
//! | `assignments/<worker-id>` | the leader, fenced | permanent |
//!
//! When you add a key here, also add it to the table in `README.md`.

use crate::{MembershipError, MigrationId, WorkerId};

/// The root of all c2c keys in etcd.
pub const ROOT: &str = "/c2c";

/// `/c2c/<mid>/`: the prefix that holds one migration.
pub fn migration_prefix(mid: &MigrationId) -> String {
    format!("{ROOT}/{mid}/")
}

/// `/c2c/<mid>/leader`: the election name passed to etcd's `Campaign`.
pub fn election_name(mid: &MigrationId) -> String {
    format!("{ROOT}/{mid}/leader")
}

/// `/c2c/<mid>/leader/`: etcd's election API stores one key per candidate under the
/// election name plus `/`; the candidate with the lowest create revision leads.
pub fn election_prefix(mid: &MigrationId) -> String {
    format!("{}/", election_name(mid))
}

/// `/c2c/<mid>/workers/`
pub fn workers_prefix(mid: &MigrationId) -> String {
    format!("{ROOT}/{mid}/workers/")
}

/// `/c2c/<mid>/workers/<worker-id>`: one lease-bound registration per live worker.
pub fn worker(mid: &MigrationId, worker: &WorkerId) -> String {
    format!("{}{worker}", workers_prefix(mid))
}

/// `/c2c/<mid>/assignments/`
pub fn assignments_prefix(mid: &MigrationId) -> String {
    format!("{ROOT}/{mid}/assignments/")
}

/// A key of the leader's durable state. Typed so that the fenced store can only write
/// inside the migration's own key space.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    /// `state`: phase, options, T0/Tc/Td, plan epoch.
    State,
    /// `plan`: the partition plan.
    Plan,
    /// `clusters`: source/destination connection info that workers read.
    Clusters,
    /// `assignments/<worker-id>`: what one worker must run.
    Assignment(WorkerId),
}

impl StateKey {
    /// The full etcd key.
    pub fn path(&self, mid: &MigrationId) -> String {
        match self {
            Self::State => format!("{ROOT}/{mid}/state"),
            Self::Plan => format!("{ROOT}/{mid}/plan"),
            Self::Clusters => format!("{ROOT}/{mid}/clusters"),
            Self::Assignment(worker) => format!("{}{worker}", assignments_prefix(mid)),
        }
    }
}

impl std::fmt::Display for StateKey {
    /// The key relative to the migration prefix, for logs and errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::State => f.write_str("state"),
            Self::Plan => f.write_str("plan"),
            Self::Clusters => f.write_str("clusters"),
            Self::Assignment(worker) => write!(f, "assignments/{worker}"),
        }
    }
}

/// A family of [`StateKey`]s that can be listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatePrefix {
    /// all `assignments/<worker-id>`
    Assignments,
}

impl StatePrefix {
    /// The etcd key prefix, ending in `/`.
    pub fn path(&self, mid: &MigrationId) -> String {
        match self {
            Self::Assignments => assignments_prefix(mid),
        }
    }

    /// Turns a full key found under this prefix back into its [`StateKey`].
    pub fn parse(&self, mid: &MigrationId, key: &str) -> Result<StateKey, MembershipError> {
        let prefix = self.path(mid);
        let Some(rest) = key.strip_prefix(&prefix) else {
            return Err(MembershipError::InvalidId(format!(
                "key {key:?} is not under {prefix:?}"
            )));
        };
        match self {
            Self::Assignments => Ok(StateKey::Assignment(WorkerId::new(rest)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let mid = MigrationId::new("m1").unwrap();
        let w = WorkerId::new("w-1").unwrap();
        assert_eq!(migration_prefix(&mid), "/c2c/m1/");
        assert_eq!(election_name(&mid), "/c2c/m1/leader");
        assert_eq!(election_prefix(&mid), "/c2c/m1/leader/");
        assert_eq!(workers_prefix(&mid), "/c2c/m1/workers/");
        assert_eq!(worker(&mid, &w), "/c2c/m1/workers/w-1");
        assert_eq!(StateKey::State.path(&mid), "/c2c/m1/state");
        assert_eq!(StateKey::Plan.path(&mid), "/c2c/m1/plan");
        assert_eq!(StateKey::Clusters.path(&mid), "/c2c/m1/clusters");
        let assignment = StateKey::Assignment(w.clone());
        assert_eq!(assignment.path(&mid), "/c2c/m1/assignments/w-1");
        assert_eq!(StatePrefix::Assignments.path(&mid), "/c2c/m1/assignments/");
        assert_eq!(
            StatePrefix::Assignments
                .parse(&mid, "/c2c/m1/assignments/w-1")
                .unwrap(),
            assignment
        );
        assert!(StatePrefix::Assignments
            .parse(&mid, "/c2c/m2/assignments/w-1")
            .is_err());
        assert!(StatePrefix::Assignments
            .parse(&mid, "/c2c/m1/assignments/a/b")
            .is_err());
    }

    #[test]
    fn migrations_do_not_share_prefixes() {
        // `m1` must not be a prefix-match of `m10`'s keys.
        let m1 = MigrationId::new("m1").unwrap();
        let m10 = MigrationId::new("m10").unwrap();
        assert!(!StateKey::State
            .path(&m10)
            .starts_with(&migration_prefix(&m1)));
    }
}
