//! Compiles the protos with protox (pure Rust, so no system `protoc`) and writes the encoded file
//! descriptor set next to the generated code for server reflection.

use std::{env, fs, path::PathBuf};

/// The seed's API (no package) and Bookshop's own (`bookshop.catalog.v1`).
const PROTOS: [&str; 2] = ["recommendations.proto", "bookshop/catalog/v1/catalog.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protox does not emit rerun-if-changed lines itself.
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("bookshop_descriptor.bin"), protox::prost::Message::encode_to_vec(&fds))?;
    // The Marketplace hands a reload's changes on to the pages' live script as JSON.
    let serialize = "#[derive(serde::Serialize)]";
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .type_attribute("bookshop.catalog.v1.CategoryChange", serialize)
        .compile_fds(fds)?;
    Ok(())
}
