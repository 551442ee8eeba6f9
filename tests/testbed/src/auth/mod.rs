//! Authentication (SCRAM-SHA-256) and the users and roles the testbed knows.

pub mod actions;
pub mod roles;
pub mod scram;
pub mod users;
