//! `GET /metrics`: Prometheus' text format (0.0.4) on every process's port.
//!
//! ```text
//!  c2c run            build_info + migration (the Coordinator's snapshot) + engine
//!  c2c coordinator    build_info + leader/term; the leader adds migration + workers
//!  c2c worker         build_info + its share (WorkerService report) + engine
//! ```
//!
//! - `text`: the hand-written encoder (families, escaping, histograms);
//! - `migration`: what `/progress` shows, as metrics (state, copy, CEA, lag, verifier);
//! - `process`: `c2c_build_info` and the engine's process-wide counters
//!   (`c2c_engine::metrics::ENGINE`: events applied by type, batch histograms, retries);
//! - `roles`: the scaled-out coordinator's and worker's own families.
//!
//! Labels are bounded: states, phases, event types, sides, retry kinds, worker
//! statuses. Nothing here names a namespace, a host or a URI. When you add a metric,
//! also update README.md ("Metrics") and, if dashboards or alerts should use it,
//! `deploy/prometheus/alerts.yml` and `deploy/grafana/c2c-dashboard.json`
//! (`tests/metrics/deploy.rs` checks that every `c2c_*` name they use is exported).

pub mod migration;
pub mod process;
pub mod roles;
pub mod text;

use std::future::Future;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::coordinator::Coordinator;
use text::Exposition;

/// The path every process serves its metrics on.
pub const PATH: &str = "/metrics";

/// A router serving `/metrics` from `render`, to merge into a process's app.
pub fn router<F, Fut>(render: F) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    Router::new().route(
        PATH,
        get(move || {
            let render = render.clone();
            async move { exposition(render().await) }
        }),
    )
}

fn exposition(body: String) -> Response {
    ([(CONTENT_TYPE, text::CONTENT_TYPE)], body).into_response()
}

/// `c2c run`'s metrics: the migration this process runs, and its engine.
pub fn render_run(coordinator: &Coordinator) -> String {
    let mut text = Exposition::new();
    process::build_info(&mut text, &coordinator.settings().id);
    migration::render(&mut text, coordinator);
    process::engine(&mut text);
    text.finish()
}

/// `/metrics` for `c2c run` (and the in-process test server).
pub fn run_router(coordinator: Arc<Coordinator>) -> Router {
    router(move || {
        let coordinator = coordinator.clone();
        async move { render_run(&coordinator) }
    })
}
