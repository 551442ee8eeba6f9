//! The gRPC API on a real socket (with and without an API token), sharing the port with REST, over the fake engine
//! driver; and `c2c ctl` (the built binary) against it. One test binary, one module
//! per concern.

mod auth;
mod common;
mod ctl;
mod migration;
#[path = "../common/pki.rs"]
mod pki;
mod services;
mod tls;
