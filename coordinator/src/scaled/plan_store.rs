//! The plan persisted in etcd through the leader's fenced store: a deposed leader's
//! write fails instead of overwriting its successor's plan.

use std::sync::Arc;

use c2c_membership::{StateKey, StateStore, StateStoreExt};

use crate::cluster::plan::Plan;
use crate::cluster::store::{BoxFuture, PlanStore};

pub struct EtcdPlanStore {
    store: Arc<dyn StateStore>,
}

impl EtcdPlanStore {
    pub fn new(store: Arc<dyn StateStore>) -> EtcdPlanStore {
        EtcdPlanStore { store }
    }
}

impl PlanStore for EtcdPlanStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Plan>, String>> {
        Box::pin(async move {
            self.store
                .get::<Plan>(&StateKey::Plan)
                .await
                .map_err(|error| format!("cannot read the plan from etcd: {error}"))
        })
    }

    fn save(&self, plan: &Plan) -> BoxFuture<'_, Result<(), String>> {
        let plan = plan.clone();
        Box::pin(async move {
            self.store
                .put(&StateKey::Plan, &plan)
                .await
                .map_err(|error| {
                    format!("cannot persist plan epoch {} in etcd: {error}", plan.epoch)
                })
        })
    }
}
