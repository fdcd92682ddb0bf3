//! Compiles `recommendations.proto` with protox (pure Rust, so no system `protoc`) and writes the
//! encoded file descriptor set next to the generated code for server reflection.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protox does not emit rerun-if-changed lines itself.
    println!("cargo:rerun-if-changed=recommendations.proto");
    let fds = protox::compile(["recommendations.proto"], ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("recommendations_descriptor.bin"),
        protox::prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
