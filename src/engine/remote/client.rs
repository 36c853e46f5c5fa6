//! The gRPC side of the remote engine: the connection, the start-up checks, and requests with
//! deadlines and re-sends.

use std::fmt;
use std::time::Duration;

use tokio::runtime::Runtime;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::protocol::grpc_inference_service_client::GrpcInferenceServiceClient;
use super::protocol::{
    ModelConfigRequest, ModelInferRequest, ModelInferResponse, ModelMetadataRequest,
    ModelMetadataResponse, ModelReadyRequest, ModelStatisticsRequest, ServerLiveRequest,
    ServerMetadataRequest, ServerReadyRequest,
};
use super::{RemoteOptions, ServerAddress};
use crate::engine::EngineError;
use crate::model::METADATA_KEY;

/// The model a client talks to, for messages: `inference server grpc://…, model 'm'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub address: ServerAddress,
    pub model: String,
    pub version: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "inference server {}, model '{}'",
            self.address, self.model
        )?;
        if !self.version.is_empty() {
            write!(f, " version {}", self.version)?;
        }
        Ok(())
    }
}

/// A gRPC status on one line: `Code (message: cause: cause)`.
pub(super) fn describe(status: &Status) -> String {
    let mut text = status.message().to_string();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !cause.is_empty() && !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
        source = cause_of(source);
    }
    let text: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("gRPC status {:?} ({})", status.code(), text.trim())
}

fn cause_of<'a>(
    error: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(|e| e.source())
}

/// Whether a failed request may be sent again: the server could not be reached or the
/// connection broke (a restarting server). Requests the server refused are not re-sent.
fn retryable(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        // A connection that broke mid-request surfaces as these, with a transport error as
        // the cause rather than a status the server sent.
        Code::Unknown | Code::Internal | Code::Cancelled => {
            let mut source = std::error::Error::source(status);
            while let Some(cause) = source {
                if cause.is::<tonic::transport::Error>() || cause.is::<std::io::Error>() {
                    return true;
                }
                source = cause.source();
            }
            let message = status.message().to_ascii_lowercase();
            [
                "transport",
                "connection",
                "broken pipe",
                "h2 protocol",
                "stream",
            ]
            .iter()
            .any(|w| message.contains(w))
        }
        _ => false,
    }
}

/// A request the server may drop after `timeout` (gRPC deadline).
fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// What the start-up checks found.
pub(super) struct Found {
    pub metadata: ModelMetadataResponse,
    /// Triton's `max_batch_size` when the model batches (> 0).
    pub max_batch_size: Option<usize>,
    /// A manifest stored in the model configuration's parameters (`rsstyle serve-repo`).
    pub manifest_json: Option<String>,
    pub backend: Option<String>,
    pub server_name: String,
    pub server_version: String,
    /// Time of one call without work (`ServerLive`) on the open connection.
    pub round_trip: Duration,
}

/// Executions of one batch size on the server (Triton's statistics extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStatistics {
    /// Frames per execution.
    pub batch_size: u64,
    /// Executions of that size.
    pub executions: u64,
    /// Their total compute time (input, inference and output), ns.
    pub compute_ns: u64,
}

/// A gRPC client on its own runtime.
pub(super) struct Client {
    runtime: Option<Runtime>,
    grpc: GrpcInferenceServiceClient<Channel>,
    target: Target,
    timeout: Duration,
    retries: u32,
}

impl Drop for Client {
    fn drop(&mut self) {
        // Not `drop`: that blocks, and panics if the engine is dropped inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The runtime and channel for `address`; the channel connects on first use and again after
/// the connection breaks.
fn channel(
    address: &ServerAddress,
    timeout: Duration,
) -> Result<(Runtime, GrpcInferenceServiceClient<Channel>), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rsstyle-grpc")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the gRPC runtime: {e}"))?;
    let endpoint = Endpoint::from_shared(address.http_uri())
        .map_err(|e| format!("device {address}: not a usable address: {e}"))?
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        // Frames are megabytes: HTTP/2's default 64 KiB windows would make every reply wait
        // for window updates.
        .initial_stream_window_size(16 << 20)
        .initial_connection_window_size(64 << 20);
    let channel = {
        let _context = runtime.enter();
        endpoint.connect_lazy()
    };
    // A 1080p float frame is 24 MB, past gRPC's usual 4 MB limit.
    let grpc = GrpcInferenceServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    Ok((runtime, grpc))
}

impl Client {
    pub fn connect(target: Target, options: &RemoteOptions) -> Result<Self, EngineError> {
        let (runtime, grpc) = channel(&target.address, options.timeout)
            .map_err(|e| EngineError::Server(format!("{target}: {e}")))?;
        Ok(Self {
            runtime: Some(runtime),
            grpc,
            target,
            timeout: options.timeout,
            retries: options.retries,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("present until dropped")
    }

    /// Server live and ready, model ready, its metadata and (Triton) configuration, all
    /// within the timeout. Errors are one line naming the server, the model and the status.
    pub fn check_and_describe(&self) -> Result<Found, EngineError> {
        let target = &self.target;
        let timeout = self.timeout;
        let mut grpc = self.grpc.clone();
        let checks = async move {
            let fail =
                |what: &str, status: Status| format!("{target}: {what}: {}", describe(&status));
            let live = grpc
                .server_live(with_deadline(ServerLiveRequest {}, timeout))
                .await
                .map_err(|s| fail("the server cannot be reached", s))?;
            if !live.into_inner().live {
                return Err(format!("{target}: the server says it is not live"));
            }
            let ready = grpc
                .server_ready(with_deadline(ServerReadyRequest {}, timeout))
                .await
                .map_err(|s| fail("the server's readiness cannot be read", s))?;
            if !ready.into_inner().ready {
                return Err(format!("{target}: the server is not ready"));
            }
            let (name, version) = (target.model.clone(), target.version.clone());
            let model_ready = grpc
                .model_ready(with_deadline(
                    ModelReadyRequest {
                        name: name.clone(),
                        version: version.clone(),
                    },
                    timeout,
                ))
                .await
                .map_err(|s| fail("the model is not available", s))?;
            if !model_ready.into_inner().ready {
                // Triton answers "not ready" for unknown models too; the metadata call names
                // the reason.
                let why = grpc
                    .model_metadata(with_deadline(
                        ModelMetadataRequest {
                            name: name.clone(),
                            version: version.clone(),
                        },
                        timeout,
                    ))
                    .await;
                return Err(match why {
                    Err(status) => fail("the model is not available", status),
                    Ok(_) => format!(
                        "{target}: the model is not ready (it is known to the server but not \
                         loaded: see the server's log)"
                    ),
                });
            }
            let metadata = grpc
                .model_metadata(with_deadline(
                    ModelMetadataRequest {
                        name: name.clone(),
                        version: version.clone(),
                    },
                    timeout,
                ))
                .await
                .map_err(|s| fail("the model's metadata cannot be read", s))?
                .into_inner();
            let server = grpc
                .server_metadata(with_deadline(ServerMetadataRequest {}, timeout))
                .await
                .map(|r| r.into_inner())
                .unwrap_or_default();
            // Triton's extension; other servers answer Unimplemented.
            let config = match grpc
                .model_config(with_deadline(ModelConfigRequest { name, version }, timeout))
                .await
            {
                Ok(reply) => reply.into_inner().config,
                Err(s) if s.code() == Code::Unimplemented => None,
                Err(s) => return Err(fail("the model's configuration cannot be read", s)),
            };
            let pinged = tokio::time::Instant::now();
            grpc.server_live(with_deadline(ServerLiveRequest {}, timeout))
                .await
                .map_err(|s| fail("the server cannot be reached", s))?;
            let round_trip = pinged.elapsed();
            Ok(Found {
                metadata,
                max_batch_size: config
                    .as_ref()
                    .and_then(|c| usize::try_from(c.max_batch_size).ok())
                    .filter(|&m| m > 0),
                manifest_json: config
                    .as_ref()
                    .and_then(|c| c.parameters.get(METADATA_KEY))
                    .map(|p| p.string_value.clone()),
                backend: config
                    .as_ref()
                    .map(|c| {
                        if c.backend.is_empty() {
                            c.platform.clone()
                        } else {
                            c.backend.clone()
                        }
                    })
                    .filter(|b| !b.is_empty()),
                server_name: server.name,
                server_version: server.version,
                round_trip,
            })
        };
        self.runtime()
            .block_on(async { tokio::time::timeout(timeout, checks).await })
            .map_err(|_| {
                format!(
                    "{target}: no answer within the timeout of {} ms (engine-options timeout)",
                    timeout.as_millis()
                )
            })
            .and_then(|r| r)
            .map_err(EngineError::Server)
    }

    /// Sends `requests` at once and returns their replies in the same order. A request that
    /// cannot reach the server is sent again (up to `retries` times, backing off); all of
    /// them share one deadline. The first failure fails the batch and cancels the rest.
    pub fn infer_all(
        &self,
        requests: Vec<ModelInferRequest>,
    ) -> Result<Vec<ModelInferResponse>, EngineError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let runtime = self.runtime();
        let handles: Vec<_> = requests
            .into_iter()
            .map(|request| {
                let grpc = self.grpc.clone();
                let retries = self.retries;
                runtime.spawn(send(grpc, request, deadline, retries))
            })
            .collect();
        let target = &self.target;
        let timeout = self.timeout;
        runtime.block_on(async move {
            let mut handles = handles;
            let mut replies = Vec::with_capacity(handles.len());
            for i in 0..handles.len() {
                let outcome = match (&mut handles[i]).await {
                    Ok(outcome) => outcome,
                    Err(e) => Err(Failure::Task(e.to_string())),
                };
                match outcome {
                    Ok(reply) => replies.push(reply),
                    Err(failure) => {
                        for rest in &handles[i + 1..] {
                            rest.abort();
                        }
                        return Err(EngineError::Server(failure.describe(target, timeout)));
                    }
                }
            }
            Ok(replies)
        })
    }

    /// Triton's per-batch-size execution counts for the model (statistics extension).
    pub fn statistics(&self) -> Result<Vec<BatchStatistics>, EngineError> {
        let target = &self.target;
        let mut grpc = self.grpc.clone();
        let mut request = tonic::Request::new(ModelStatisticsRequest {
            name: target.model.clone(),
            version: target.version.clone(),
        });
        request.set_timeout(self.timeout);
        let reply = self
            .runtime()
            .block_on(grpc.model_statistics(request))
            .map_err(|s| {
                EngineError::Server(format!(
                    "{target}: statistics cannot be read: {}",
                    describe(&s)
                ))
            })?
            .into_inner();
        let mut batches: Vec<BatchStatistics> = reply
            .model_stats
            .iter()
            .flat_map(|m| &m.batch_stats)
            .map(|b| {
                let ns =
                    |d: &Option<super::protocol::StatisticDuration>| d.as_ref().map_or(0, |d| d.ns);
                BatchStatistics {
                    batch_size: b.batch_size,
                    executions: b.compute_infer.as_ref().map_or(0, |d| d.count),
                    compute_ns: ns(&b.compute_input) + ns(&b.compute_infer) + ns(&b.compute_output),
                }
            })
            .collect();
        batches.sort_by_key(|b| b.batch_size);
        Ok(batches)
    }
}

/// Why a request failed for good.
enum Failure {
    /// The server answered with an error that re-sending would not change.
    Refused(Status),
    /// The server could not be reached, `attempts` times.
    Unreachable { status: Status, attempts: u32 },
    /// No reply before the deadline.
    Timeout { attempts: u32 },
    /// The request's task ended abnormally.
    Task(String),
}

impl Failure {
    fn describe(&self, target: &Target, timeout: Duration) -> String {
        let ms = timeout.as_millis();
        match self {
            Failure::Refused(status) => {
                format!("{target}: the request was refused: {}", describe(status))
            }
            Failure::Unreachable { status, attempts } => format!(
                "{target}: the server could not be reached ({attempts} attempt{} within \
                 the timeout of {ms} ms; engine-options retries, timeout): {}",
                if *attempts == 1 { "" } else { "s" },
                describe(status)
            ),
            Failure::Timeout { attempts } => format!(
                "{target}: no reply within the timeout of {ms} ms (engine-options timeout; \
                 {attempts} attempt{})",
                if *attempts == 1 { "" } else { "s" }
            ),
            Failure::Task(e) => format!("{target}: the request failed: {e}"),
        }
    }
}

/// Sends one request until it gets a reply, is refused, runs out of re-sends or reaches the
/// deadline.
async fn send(
    mut grpc: GrpcInferenceServiceClient<Channel>,
    request: ModelInferRequest,
    deadline: tokio::time::Instant,
    retries: u32,
) -> Result<ModelInferResponse, Failure> {
    let mut attempts = 0;
    let mut pause = Duration::from_millis(50);
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(Failure::Timeout { attempts });
        }
        let remaining = deadline - now;
        // Cloning shares the tensor bytes (`Bytes`), it does not copy them.
        let mut message = tonic::Request::new(request.clone());
        message.set_timeout(remaining);
        attempts += 1;
        let status = match tokio::time::timeout_at(deadline, grpc.model_infer(message)).await {
            Err(_) => return Err(Failure::Timeout { attempts }),
            Ok(Ok(reply)) => return Ok(reply.into_inner()),
            // The deadline passed: the server's `DeadlineExceeded`, or tonic's own enforcement
            // of the gRPC timeout (`Cancelled`, "Timeout expired").
            Ok(Err(status))
                if status.code() == Code::DeadlineExceeded
                    || tokio::time::Instant::now() >= deadline =>
            {
                return Err(Failure::Timeout { attempts });
            }
            Ok(Err(status)) if !retryable(&status) => return Err(Failure::Refused(status)),
            Ok(Err(status)) => status,
        };
        if attempts > retries {
            return Err(Failure::Unreachable { status, attempts });
        }
        let wake = tokio::time::Instant::now() + pause;
        if wake >= deadline {
            return Err(Failure::Unreachable { status, attempts });
        }
        tokio::time::sleep_until(wake).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Triton's per-batch-size execution statistics of `model` on the server at `address`
/// (statistics extension): how its dynamic batcher merged requests.
pub fn model_statistics(
    address: &ServerAddress,
    model: &str,
) -> Result<Vec<BatchStatistics>, EngineError> {
    let options = RemoteOptions::default();
    let client = Client::connect(
        Target {
            address: address.clone(),
            model: model.to_string(),
            version: String::new(),
        },
        &options,
    )?;
    client.statistics()
}

#[cfg(test)]
pub(super) fn is_retryable(status: &Status) -> bool {
    retryable(status)
}
