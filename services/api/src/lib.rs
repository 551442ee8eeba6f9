//! c2c's gRPC protocol (`proto/c2c/v1`): generated prost messages and tonic clients
//! and servers. Keep prost types at the edge: the coordinator and worker convert them
//! to their own types on receive.
//!
//! `trace_context` carries W3C trace context in the calls' metadata (`traceparent`,
//! `tracestate`): the leader's Worker clients inject it, the servers extract it.

pub mod trace_context;

pub mod v1 {
    tonic::include_proto!("c2c.v1");

    /// The encoded `FileDescriptorSet` of both services, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("c2c_v1_descriptor");
}
