//! `c2c-testbed`: an in-memory, single-node MongoDB replica set that speaks the wire
//! protocol well enough for the official drivers, built to be faithful where sync bugs
//! hide (BSON order, type bracketing, unique indexes, change streams, write blocking).
//! See `docs/testbed.md` for what is emulated and what is refused.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod auth;
pub mod bson_cmp;
pub mod decimal;
pub mod error;
pub mod query;
pub mod update;
