//! The gRPC API on a real socket, sharing the port with REST, over the fake engine
//! driver; and `c2c ctl` (the built binary) against it. One test binary, one module
//! per concern.

mod common;
mod ctl;
mod migration;
mod services;
