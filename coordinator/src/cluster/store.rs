//! Where the leader persists the plan: etcd (fenced on its leader key) when scaled out,
//! memory in tests.

use std::future::Future;
use std::pin::Pin;

use parking_lot::Mutex;

use super::plan::Plan;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait PlanStore: Send + Sync + 'static {
    fn load(&self) -> BoxFuture<'_, Result<Option<Plan>, String>>;
    /// Must fail once this process is no longer the leader.
    fn save(&self, plan: &Plan) -> BoxFuture<'_, Result<(), String>>;
}

#[derive(Default)]
pub struct MemoryPlanStore {
    plan: Mutex<Option<Plan>>,
}

impl PlanStore for MemoryPlanStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<Plan>, String>> {
        let plan = self.plan.lock().clone();
        Box::pin(async move { Ok(plan) })
    }

    fn save(&self, plan: &Plan) -> BoxFuture<'_, Result<(), String>> {
        *self.plan.lock() = Some(plan.clone());
        Box::pin(async { Ok(()) })
    }
}
