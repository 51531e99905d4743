//! Generates the example host service (`examples/proto/inventory.proto`) with protox.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=examples/proto");
    let fds = protox::compile(["inventory.proto"], ["examples/proto"])?;
    tonic_prost_build::configure()
        .type_attribute(".", "#[allow(clippy::all, missing_docs, unreachable_pub)]")
        .compile_fds(fds)?;
    Ok(())
}
