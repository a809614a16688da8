fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().build_server(true).build_client(true).compile_protos(
        &[
            "proto/metadata.proto",
            "proto/node_ctl.proto",
            "proto/raft.proto",
            "proto/log_server.proto",
            "proto/worker.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
