//! Generates the gRPC code from `echomesh/v1/*.proto` with protox (a pure-Rust protobuf compiler),
//! so building needs no system `protoc`, and writes the encoded descriptor set that server
//! reflection serves.

use prost::Message as _;

const PROTOS: &[&str] = &[
    "echomesh/v1/common.proto",
    "echomesh/v1/agent.proto",
    "echomesh/v1/graph.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("echomesh_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
