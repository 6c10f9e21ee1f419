//! Generates the director's gRPC service from a Rust description (tonic-build's manual builder):
//! no `.proto` file and no system `protoc`. Messages are the serde types of `src/wire.rs`,
//! encoded with postcard by `src/codec.rs`.

use tonic_build::manual::{Builder, Method, Service};

fn method(
    name: &str,
    route: &str,
    input: &str,
    output: &str,
) -> tonic_build::manual::MethodBuilder {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(format!("crate::wire::{input}"))
        .output_type(format!("crate::wire::{output}"))
        .codec_path("crate::codec::PostcardCodec")
}

fn main() {
    let director = Service::builder()
        .name("Director")
        .package("flspec.v1")
        .comment("The director of a federation: envoys keep a session open, clients submit runs.")
        .method(
            method("session", "Session", "EnvoyMsg", "DirectorMsg")
                .client_streaming()
                .server_streaming()
                .build(),
        )
        .method(method("submit", "Submit", "SubmitRequest", "SubmitReply").build())
        .method(
            method("watch", "Watch", "WatchRequest", "RunUpdate")
                .server_streaming()
                .build(),
        )
        .method(method("status", "Status", "StatusRequest", "RunStatus").build())
        .method(method("cancel", "Cancel", "CancelRequest", "CancelReply").build())
        .method(method("envoys", "Envoys", "EnvoysRequest", "EnvoyList").build())
        .method(method("runs", "Runs", "RunsRequest", "RunList").build())
        .method(
            method("logs", "Logs", "LogsRequest", "RunUpdate")
                .server_streaming()
                .build(),
        )
        .build();
    Builder::new().build_transport(false).compile(&[director]);
    println!("cargo::rerun-if-changed=build.rs");
}
