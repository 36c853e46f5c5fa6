//! The remote engine against an in-process mock of a KServe v2 server: order, re-sends,
//! deadlines, reconnection, message sizes and start-up errors. (`tests/remote.rs` runs the
//! engine against a real Triton.)

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::{Code, Request, Response, Status};

use super::protocol::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use super::protocol::model_infer_response::InferOutputTensor;
use super::protocol::model_metadata_response::TensorMetadata;
use super::protocol::*;
use super::*;
use crate::engine::{Device, Engine, EngineOptions};
use crate::model::{Layout, ValueRange};

/// What the mock does; shared with the test.
#[derive(Default)]
struct Behaviour {
    /// The model's input channels (3: an image model).
    channels: i64,
    /// Triton's `max_batch_size`; `None`: no ModelConfig RPC (Unimplemented), as non-Triton
    /// servers.
    max_batch_size: Option<i32>,
    /// A manifest stored in the model configuration.
    manifest: Option<String>,
    /// ModelInfer calls received.
    infers: AtomicUsize,
    /// Frames received in ModelInfer calls.
    frames: AtomicUsize,
    /// Batch sizes of the ModelInfer calls, in arrival order.
    batches: Mutex<Vec<i64>>,
    /// Statuses the next ModelInfer calls fail with, in order.
    failures: Mutex<VecDeque<Status>>,
    /// Delay of each ModelInfer call by arrival index (missing: none).
    delays: Mutex<Vec<Duration>>,
}

const MODEL: &str = "invert";

struct Mock(Arc<Behaviour>);

fn tensor(name: &str, channels: i64) -> TensorMetadata {
    TensorMetadata {
        name: name.to_string(),
        datatype: "FP32".to_string(),
        shape: vec![-1, channels, -1, -1],
    }
}

impl Mock {
    fn known(&self, name: &str) -> Result<(), Status> {
        if name == MODEL {
            Ok(())
        } else {
            Err(Status::not_found(format!(
                "Request for unknown model: '{name}' is not found"
            )))
        }
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Mock {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }
    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: true }))
    }
    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        self.known(&request.get_ref().name)?;
        Ok(Response::new(ModelReadyResponse { ready: true }))
    }
    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "mock".into(),
            version: "1".into(),
            extensions: vec![],
        }))
    }
    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        self.known(&request.get_ref().name)?;
        Ok(Response::new(ModelMetadataResponse {
            name: MODEL.into(),
            versions: vec!["1".into()],
            platform: "mock".into(),
            inputs: vec![tensor("input", self.0.channels)],
            outputs: vec![tensor("output", self.0.channels)],
        }))
    }
    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let index = self.0.infers.fetch_add(1, Ordering::SeqCst);
        let delay = self.0.delays.lock().unwrap().get(index).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(status) = self.0.failures.lock().unwrap().pop_front() {
            return Err(status);
        }
        let request = request.into_inner();
        self.known(&request.model_name)?;
        let input = &request.inputs[0];
        if input.name != "input" || input.datatype != "FP32" || input.shape.len() != 4 {
            return Err(Status::invalid_argument(format!(
                "unexpected input {} {} {:?}",
                input.name, input.datatype, input.shape
            )));
        }
        self.0
            .frames
            .fetch_add(input.shape[0] as usize, Ordering::SeqCst);
        self.0.batches.lock().unwrap().push(input.shape[0]);
        // output = 255 − input, the inversion of a 0..255 image.
        let raw = &request.raw_input_contents[0];
        let mut out = Vec::with_capacity(raw.len());
        for b in raw.chunks_exact(4) {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            out.extend_from_slice(&(255.0 - v).to_le_bytes());
        }
        Ok(Response::new(ModelInferResponse {
            model_name: MODEL.into(),
            model_version: "1".into(),
            id: request.id,
            parameters: Default::default(),
            outputs: vec![InferOutputTensor {
                name: "output".into(),
                datatype: "FP32".into(),
                shape: input.shape.clone(),
                parameters: Default::default(),
            }],
            raw_output_contents: vec![Bytes::from(out)],
        }))
    }
    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        self.known(&request.get_ref().name)?;
        let Some(max_batch_size) = self.0.max_batch_size else {
            return Err(Status::unimplemented("no model configuration here"));
        };
        let mut parameters = std::collections::HashMap::new();
        if let Some(json) = &self.0.manifest {
            parameters.insert(
                crate::model::METADATA_KEY.to_string(),
                ModelParameter {
                    string_value: json.clone(),
                },
            );
        }
        Ok(Response::new(ModelConfigResponse {
            config: Some(ModelConfig {
                name: MODEL.into(),
                platform: String::new(),
                max_batch_size,
                parameters,
                backend: "mock".into(),
            }),
        }))
    }
    async fn model_statistics(
        &self,
        _: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        Err(Status::unimplemented("no statistics here"))
    }
}

/// A mock server on a loopback port, on its own runtime; dropping it stops it and closes its
/// connections.
struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    address: SocketAddr,
    behaviour: Arc<Behaviour>,
}

impl Server {
    fn start(behaviour: Behaviour) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), Arc::new(behaviour))
    }

    fn start_on(address: SocketAddr, behaviour: Arc<Behaviour>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let incoming = {
            let _context = runtime.enter();
            tonic::transport::server::TcpIncoming::bind(address).unwrap()
        };
        let address = incoming.local_addr().unwrap();
        let service = GrpcInferenceServiceServer::new(Mock(behaviour.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming),
        );
        Self {
            runtime: Some(runtime),
            address,
            behaviour,
        }
    }

    fn device(&self) -> Device {
        format!("grpc://{}", self.address).parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn options(device: Device, model: &str, engine_options: &str) -> EngineOptions {
    let mut o = EngineOptions {
        device,
        ..EngineOptions::default()
    };
    o.apply(engine_options).unwrap();
    o.remote.model = model.to_string();
    o
}

fn open(server: &Server, engine_options: &str) -> Result<Box<dyn Engine>, String> {
    crate::engine::open(
        "",
        None,
        &ManifestPatch::default(),
        &options(server.device(), MODEL, engine_options),
    )
    .map(|(engine, _)| engine)
    .map_err(|e| e.to_string())
}

fn image_model(max_batch_size: Option<i32>) -> Behaviour {
    Behaviour {
        channels: 3,
        max_batch_size,
        ..Behaviour::default()
    }
}

/// `n` NCHW frames of 3×h×w whose values identify the frame and position.
fn frames(n: usize, h: usize, w: usize) -> Vec<f32> {
    (0..n * 3 * h * w)
        .map(|i| ((i / (3 * h * w)) * 40 + i % 7) as f32)
        .collect()
}

/// Runs a batch; returns the output and its shape.
fn infer(
    engine: &mut dyn Engine,
    input: &[f32],
    shape: [usize; 4],
) -> Result<(Vec<f32>, [usize; 4]), String> {
    let mut got = None;
    engine
        .infer(input, shape, None, &mut |s, v| got = Some((v.to_vec(), s)))
        .map_err(|e| e.to_string())?;
    Ok(got.expect("output lent"))
}

fn inverted(input: &[f32]) -> Vec<f32> {
    input.iter().map(|v| 255.0 - v).collect()
}

#[test]
fn parses_server_addresses_and_names_bad_ones() {
    let ok = |s: &str| match s.parse::<Device>() {
        Ok(Device::Server(a)) => (a.host().to_string(), a.port(), a.to_string()),
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(
        ok("grpc://triton.local:9001"),
        (
            "triton.local".into(),
            9001,
            "grpc://triton.local:9001".into()
        )
    );
    assert_eq!(
        ok("grpc://10.0.0.7"),
        ("10.0.0.7".into(), 8001, "grpc://10.0.0.7:8001".into())
    );
    assert_eq!(
        ok("grpc://[::1]:8101/"),
        ("::1".into(), 8101, "grpc://[::1]:8101".into())
    );
    assert_eq!(ok("grpc://[fe80::1]").1, 8001);
    let bad = |s: &str| s.parse::<Device>().unwrap_err();
    assert_eq!(
        bad("grpc://host:99999"),
        "device 'grpc://host:99999': port '99999' is not 1..65535"
    );
    assert_eq!(
        bad("grpc://host:8001/models/style"),
        "device 'grpc://host:8001/models/style': expected grpc://HOST[:PORT] (an inference \
         server's gRPC endpoint, port 8001 by default)"
    );
    assert!(bad("grpcs://host").contains("TLS to inference servers is not supported"));
    assert!(
        bad("http://host:8000").starts_with("device 'http://host:8000': unknown scheme 'http'")
    );
    assert!(bad("grpc://::1:8001").contains("write IPv6 addresses in brackets"));
    assert!(bad("grpc://:8001").contains("no host"));
    assert!(bad("grpc://").contains("expected grpc://HOST[:PORT]"));
}

#[test]
fn remote_options_parse_and_name_bad_values() {
    let mut o = EngineOptions::default();
    o.apply("max-in-flight=8, timeout=2500, retries=0").unwrap();
    assert_eq!(o.remote.max_in_flight, 8);
    assert_eq!(o.remote.timeout, Duration::from_millis(2500));
    assert_eq!(o.remote.retries, 0);
    assert_eq!(
        o.apply("max-in-flight=0"),
        Err("engine option max-in-flight: '0' is not 1..1024".to_string())
    );
    assert_eq!(
        o.apply("timeout=soon"),
        Err("engine option timeout: 'soon' is not 1..3600000".to_string())
    );
}

#[test]
fn batches_split_into_requests_within_both_bounds() {
    assert_eq!(split(1, 4, None), vec![1]);
    assert_eq!(split(4, 4, None), vec![1, 1, 1, 1]);
    assert_eq!(split(6, 4, None), vec![2, 2, 1, 1]);
    assert_eq!(split(8, 1, None), vec![8]);
    assert_eq!(split(5, 1, Some(2)), vec![2, 2, 1]);
    assert_eq!(split(9, 2, Some(4)), vec![3, 3, 3]);
    assert!(split(0, 4, None).is_empty());
    for n in 1..40 {
        for k in 1..6 {
            for m in [None, Some(1), Some(3), Some(8)] {
                let s = split(n, k, m);
                assert_eq!(s.iter().sum::<usize>(), n);
                assert!(s.iter().all(|&c| c >= 1 && c <= m.unwrap_or(n)));
                assert!(s.len() <= k.max(n.div_ceil(m.unwrap_or(n))));
            }
        }
    }
}

#[test]
fn start_up_reads_metadata_config_and_stored_manifest() {
    let server = Server::start(Behaviour {
        manifest: Some(r#"{"range":"-1..1","size_multiple":4,"description":"served"}"#.into()),
        ..image_model(Some(8))
    });
    let engine = open(&server, "").unwrap();
    let m = engine.manifest();
    assert_eq!((m.input.as_str(), m.output.as_str()), ("input", "output"));
    assert_eq!(m.layout, Layout::Nchw);
    assert_eq!(
        (m.input_range, m.output_range),
        (ValueRange::Signed, ValueRange::Signed)
    );
    assert_eq!(m.size, crate::model::SizeRule::Multiple(4));
    // Triton's max_batch_size bounds requests (see the description), not the element's batches.
    assert_eq!(m.max_batch, None);
    assert_eq!(m.description.as_deref(), Some("served"));
    let d = engine.device_description();
    assert!(
        d.starts_with(&format!(
            "inference server grpc://{}, model 'invert' (mock 1, mock backend, batches of ≤ 8; up to 4 requests in flight; round trip ",
            server.address
        )),
        "{d}"
    );

    // A server without Triton's configuration RPC: the manifest from the metadata alone.
    let plain = Server::start(image_model(None));
    let engine = open(&plain, "").unwrap();
    assert_eq!(engine.manifest().max_batch, None);
    assert!(!engine.device_description().contains("batches of"));
    assert_eq!(engine.manifest().input_range, ValueRange::Byte);
}

#[test]
fn replies_come_back_in_frame_order_whatever_order_they_arrive_in() {
    let server = Server::start(image_model(Some(8)));
    // The first request is answered last.
    *server.behaviour.delays.lock().unwrap() = vec![Duration::from_millis(400), Duration::ZERO];
    let mut engine = open(&server, "max-in-flight=4").unwrap();
    let (h, w) = (5, 6);
    let input = frames(4, h, w);
    let (out, shape) = infer(engine.as_mut(), &input, [4, 3, h, w]).unwrap();
    assert_eq!(shape, [4, 3, h, w]);
    assert_eq!(out, inverted(&input));
    assert_eq!(*server.behaviour.batches.lock().unwrap(), vec![1, 1, 1, 1]);

    // The server's largest batch bounds each request.
    let small = Server::start(image_model(Some(2)));
    let mut engine = open(&small, "max-in-flight=1").unwrap();
    assert!(engine.device_description().contains("batches of ≤ 2"));
    let input = frames(5, h, w);
    let (out, _) = infer(engine.as_mut(), &input, [5, 3, h, w]).unwrap();
    assert_eq!(out, inverted(&input));
    let mut batches = small.behaviour.batches.lock().unwrap().clone();
    batches.sort();
    assert_eq!(batches, vec![1, 2, 2]);
}

#[test]
fn unreachable_requests_are_sent_again_and_no_frame_is_doubled() {
    let server = Server::start(image_model(Some(8)));
    let mut engine = open(&server, "max-in-flight=2").unwrap();
    server.behaviour.failures.lock().unwrap().extend([
        Status::unavailable("connection refused"),
        Status::unavailable("connection refused"),
    ]);
    let input = frames(2, 4, 4);
    let (out, _) = infer(engine.as_mut(), &input, [2, 3, 4, 4]).unwrap();
    assert_eq!(out, inverted(&input));
    // Two failed calls, then one successful call per request: each frame inferred once.
    assert_eq!(server.behaviour.infers.load(Ordering::SeqCst), 4);
    assert_eq!(server.behaviour.frames.load(Ordering::SeqCst), 2);
}

#[test]
fn a_refused_request_fails_the_batch_at_once_with_one_line() {
    let server = Server::start(image_model(Some(8)));
    let mut engine = open(&server, "").unwrap();
    server
        .behaviour
        .failures
        .lock()
        .unwrap()
        .push_back(Status::invalid_argument(
            "unexpected shape for input 'input' for model 'invert'.\nExpected [-1,3,-1,-1]",
        ));
    let started = Instant::now();
    let e = infer(engine.as_mut(), &frames(1, 4, 4), [1, 3, 4, 4]).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        e,
        format!(
            "inference server grpc://{}, model 'invert': the request was refused: gRPC status \
             InvalidArgument (unexpected shape for input 'input' for model 'invert'. Expected [-1,3,-1,-1])",
            server.address
        )
    );
    assert_eq!(server.behaviour.infers.load(Ordering::SeqCst), 1);
}

#[test]
fn a_reply_later_than_the_timeout_fails_the_batch_in_time() {
    let server = Server::start(image_model(Some(8)));
    let mut engine = open(&server, "timeout=300").unwrap();
    *server.behaviour.delays.lock().unwrap() = vec![Duration::from_secs(5)];
    let started = Instant::now();
    let e = infer(engine.as_mut(), &frames(1, 4, 4), [1, 3, 4, 4]).unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert_eq!(
        e,
        format!(
            "inference server grpc://{}, model 'invert': no reply within the timeout of 300 ms \
             (engine-options timeout; 1 attempt)",
            server.address
        )
    );
}

#[test]
fn a_server_gone_for_good_is_reported_within_the_timeout() {
    let server = Server::start(image_model(Some(8)));
    let address = server.address;
    let mut engine = open(&server, "timeout=1500,retries=20").unwrap();
    infer(engine.as_mut(), &frames(1, 4, 4), [1, 3, 4, 4]).unwrap();
    drop(server);
    let started = Instant::now();
    let e = infer(engine.as_mut(), &frames(1, 4, 4), [1, 3, 4, 4]).unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(
        e.starts_with(&format!(
            "inference server grpc://{address}, model 'invert': the server could not be reached ("
        )),
        "{e}"
    );
    assert!(e.contains("gRPC status Unavailable"), "{e}");
    assert!(!e.contains('\n'));

    // With no re-sends allowed: one attempt.
    let mut engine = {
        let again = Server::start_on(address, Arc::new(image_model(Some(8))));
        let engine = open(&again, "retries=0").unwrap();
        drop(again);
        engine
    };
    let e = infer(engine.as_mut(), &frames(1, 4, 4), [1, 3, 4, 4]).unwrap_err();
    assert!(
        e.contains("(1 attempt within the timeout of 10000 ms"),
        "{e}"
    );
}

#[test]
fn the_engine_reconnects_to_a_restarted_server_and_loses_no_frame() {
    let server = Server::start(image_model(Some(8)));
    let address = server.address;
    let mut engine = open(&server, "max-in-flight=3").unwrap();
    let input = frames(3, 6, 4);
    assert_eq!(
        infer(engine.as_mut(), &input, [3, 3, 6, 4]).unwrap().0,
        inverted(&input)
    );
    drop(server);
    // The server comes back on the same port 400 ms later.
    let behaviour = Arc::new(image_model(Some(8)));
    let restarted = {
        let behaviour = behaviour.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            Server::start_on(address, behaviour)
        })
    };
    let input = frames(3, 6, 4);
    let (out, _) = infer(engine.as_mut(), &input, [3, 3, 6, 4]).unwrap();
    assert_eq!(out, inverted(&input));
    let _server = restarted.join().unwrap();
    assert_eq!(behaviour.frames.load(Ordering::SeqCst), 3);
}

#[test]
fn a_1080p_float_frame_passes_the_message_size_limits() {
    let server = Server::start(image_model(Some(8)));
    let mut engine = open(&server, "").unwrap();
    let (h, w) = (1080, 1920);
    let input = frames(1, h, w);
    assert!(input.len() * 4 > 24_000_000);
    let (out, shape) = infer(engine.as_mut(), &input, [1, 3, h, w]).unwrap();
    assert_eq!(shape, [1, 3, h, w]);
    assert_eq!(out, inverted(&input));
}

#[test]
fn start_up_errors_are_one_line_naming_server_model_and_status() {
    // Nothing listens on the port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let device: Device = format!("grpc://127.0.0.1:{port}").parse().unwrap();
    let e = crate::engine::open(
        "",
        None,
        &ManifestPatch::default(),
        &options(device, MODEL, "timeout=3000"),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(&format!(
            "inference server grpc://127.0.0.1:{port}, model 'invert': the server cannot be reached: gRPC status Unavailable ("
        )),
        "{e}"
    );
    assert!(e.contains("Connection refused"), "{e}");
    assert!(!e.contains('\n'));

    let server = Server::start(image_model(Some(8)));
    let e = crate::engine::open(
        "",
        None,
        &ManifestPatch::default(),
        &options(server.device(), "candy", ""),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!(
            "inference server grpc://{}, model 'candy': the model is not available: gRPC status \
             NotFound (Request for unknown model: 'candy' is not found)",
            server.address
        )
    );

    let grey = Server::start(Behaviour {
        channels: 1,
        ..image_model(Some(8))
    });
    assert_eq!(
        open(&grey, "").map(|_| ()).unwrap_err(),
        format!(
            "'grpc://{}/invert' is not an image-to-image model: input 'input' has 1 channel; \
             rsstyle needs a 3-channel (RGB) image",
            grey.address
        )
    );

    let e = crate::engine::open(
        "",
        None,
        &ManifestPatch::default(),
        &options(server.device(), "", ""),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!(
            "device grpc://{}: set server-model to the model's name on the server (or model to \
             its ONNX file, whose name it then is)",
            server.address
        )
    );
}

#[test]
fn a_local_model_file_names_the_server_model_and_must_match_it() {
    use crate::onnx::{Elem, GraphBuilder};
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, input: &str| {
        let mut b = GraphBuilder::new(file);
        let dims = ["n".into(), 3.into(), "h".into(), "w".into()];
        let x = b.input(input, Elem::F32, &dims);
        b.node("Identity", &[&x], &["output"], &[]);
        b.output("output", Elem::F32, &dims);
        let path = dir.path().join(file);
        b.write(&path).unwrap();
        path
    };
    let server = Server::start(image_model(Some(4)));
    let good = write("invert.onnx", "input");
    let (engine, _) = crate::engine::open(
        &good.display().to_string(),
        None,
        &ManifestPatch::default(),
        &options(server.device(), "", ""),
    )
    .unwrap();
    assert!(engine.device_description().contains("model 'invert'"));
    assert!(engine.device_description().contains("batches of ≤ 4"));

    let other = write("other.onnx", "x");
    let e = crate::engine::open(
        &other.display().to_string(),
        None,
        &ManifestPatch::default(),
        &options(server.device(), MODEL, ""),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!(
            "inference server grpc://{}, model 'invert' does not match the model file '{}': the \
             server's model has no input 'x' (inputs: input [?,3,?,?] float)",
            server.address,
            other.display()
        )
    );
}

#[test]
fn connection_errors_are_retryable_and_refusals_are_not() {
    assert!(client::is_retryable(&Status::unavailable(
        "tcp connect error"
    )));
    assert!(client::is_retryable(&Status::unknown("transport error")));
    assert!(!client::is_retryable(&Status::invalid_argument(
        "bad shape"
    )));
    assert!(!client::is_retryable(&Status::not_found("no model")));
    assert!(!client::is_retryable(&Status::new(
        Code::Unknown,
        "model raised"
    )));
}
