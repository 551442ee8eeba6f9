//! The REST API in process, over the fake engine driver: one test binary (linking is
//! the slow part on our machines), one module per concern.

mod common;
mod cutover;
mod cutover_restart;
mod progress;
mod progress_cutover;
mod routes;
mod server;
mod start_combinations;
mod start_fields;
mod states;
