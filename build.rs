fn main() {
    gst_plugin_version_helper::info();
    remote_protocol();
}

/// The KServe v2 / Open Inference Protocol gRPC messages, client and server (the server for
/// the remote engine's fault tests) from `src/engine/remote/proto/`, compiled with a vendored
/// `protoc`, so that no system protobuf compiler is needed.
fn remote_protocol() {
    let proto = "src/engine/remote/proto/inference.proto";
    println!("cargo:rerun-if-changed={proto}");
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc for this platform");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // Tensor contents as `bytes::Bytes`: requests are cloned for retries without copying, and
    // replies are sliced out of the received buffer.
    config.bytes(["."]);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &[proto], &["src/engine/remote/proto"])
        .expect("compiling the inference protocol");
}
