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
    // The server side of AuthorizeService once more, over a request type written by hand
    // (src/grpc/authorize_call.rs): the path, the route and the wire format are the proto's,
    // and clients keep the generated `AuthorizeRequest`. Written to
    // `apitokens.v1.AuthorizeService.rs`; src/grpc/mod.rs serves this one.
    let authorize = tonic_build::manual::Method::builder()
        .name("authorize")
        .route_name("Authorize")
        .input_type("crate::grpc::authorize_call::AuthorizeCall")
        .output_type("crate::grpc::authorize_response::AuthorizeResponse")
        .codec_path("crate::grpc::authorize_call::AuthorizeCodec")
        .build();
    tonic_build::manual::Builder::new()
        .build_client(false)
        .compile(&[tonic_build::manual::Service::builder()
            .name("AuthorizeService")
            .package("apitokens.v1")
            .method(authorize)
            .build()]);
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
