//! c2c's gRPC protocol (`proto/c2c/v1`): generated prost messages and tonic clients
//! and servers. Keep prost types at the edge: the coordinator and worker convert them
//! to their own types on receive.

pub mod v1 {
    tonic::include_proto!("c2c.v1");

    /// The encoded `FileDescriptorSet` of both services, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("c2c_v1_descriptor");
}
