//! Generates the tonic server and client from `proto/` with protox: no system `protoc`.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["user.proto"], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Served by the reflection service.
    std::fs::write(out.join("user_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .type_attribute(".", "#[allow(clippy::all, missing_docs, unreachable_pub)]")
        .compile_fds(fds)?;
    Ok(())
}
