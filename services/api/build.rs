//! Generates the `c2c.v1` messages, clients and servers into `OUT_DIR`, plus the file
//! descriptor set that server reflection serves. Needs `protoc` (Debian's
//! `protobuf-compiler`; `scripts/lib/install.sh` installs it).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        root.join("c2c/v1/migration.proto"),
        root.join("c2c/v1/worker.proto"),
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    let descriptor = PathBuf::from(std::env::var("OUT_DIR")?).join("c2c_v1_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_protos(&protos, &[root])?;
    Ok(())
}
