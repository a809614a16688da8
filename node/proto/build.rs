fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Appended records travel as `Bytes`: decoded without a copy, cloned by reference.
        .bytes(".restate.log_server.AppendRequest")
        .compile_protos(
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
