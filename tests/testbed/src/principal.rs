//! Who a connection is authenticated as, and what that user may do.

use crate::auth::roles::{privileges_for, ClusterAction, Privileges};
use crate::auth::users::RoleRef;

#[derive(Debug, Clone)]
pub struct AuthenticatedUser {
    pub user: String,
    pub db: String,
    pub privileges: Privileges,
}

impl AuthenticatedUser {
    pub fn new(user: String, db: String, roles: &[RoleRef]) -> AuthenticatedUser {
        AuthenticatedUser {
            user,
            db,
            privileges: privileges_for(roles),
        }
    }

    pub fn may_bypass_write_blocking(&self) -> bool {
        self.privileges
            .has_cluster_action(ClusterAction::BypassWriteBlockingMode)
    }
}
