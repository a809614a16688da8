//! Generates the service-protocol message types (prost) from `proto/`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    prost_build::Config::new()
        // `bytes` fields (state keys and values, ids, call parameters) as `bytes::Bytes`:
        // decoding a frame then shares the received buffer instead of copying.
        .bytes(["."])
        .compile_protos(&["proto/dev/restate/service/protocol.proto"], &["proto"])?;
    Ok(())
}
