//! Generates the gRPC code and the descriptor set that reflection serves, with a
//! vendored protoc so a fresh machine needs none installed.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protos: [PathBuf; 4] = [
        "proto/apitokens/v1/resources.proto".into(),
        "proto/apitokens/v1/token_service.proto".into(),
        "proto/apitokens/v1/account_service.proto".into(),
        "proto/apitokens/v1/authorize_service.proto".into(),
    ];
    tonic_prost_build::configure()
        // Small per-call buffers: see src/grpc/codec.rs.
        .codec_path("crate::grpc::codec::SmallBufferCodec")
        // Written by hand, so an allowed call's response is encoded from its grant: see
        // src/grpc/authorize_response.rs.
        .extern_path(
            ".apitokens.v1.AuthorizeResponse",
            "crate::grpc::authorize_response::AuthorizeResponse",
        )
        .file_descriptor_set_path(out_dir.join("apitokens_descriptor.bin"))
        .compile_protos(&protos, &[PathBuf::from("proto"), include])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
