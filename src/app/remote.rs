//! Inference on a server: the `--server-model` options of the commands that take `--device`,
//! and `rsstyle serve-repo`, which writes a Triton model repository for rsstyle models.

use std::path::PathBuf;

use anyhow::{Result, bail};
use gstrsstyle::engine::EngineOptions;
use gstrsstyle::engine::remote::repository::{self, Backend, RepoOptions};

/// Which model an inference server runs (`--device grpc://HOST:PORT`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// With --device grpc://HOST:PORT: the model's name on the inference server (default: the
    /// --model file's name without .onnx, as `rsstyle serve-repo` names it).
    #[arg(long)]
    pub server_model: Option<String>,
    /// With --device grpc://HOST:PORT: the model's version on the server (default: the
    /// server's choice).
    #[arg(long)]
    pub server_model_version: Option<String>,
}

impl ServerArgs {
    /// The element properties, for a `gst-launch` description (empty when unset).
    pub fn properties(&self) -> String {
        let mut s = String::new();
        for (name, value) in [
            ("server-model", &self.server_model),
            ("server-model-version", &self.server_model_version),
        ] {
            if let Some(v) = value {
                s += &format!(" {name}=\"{}\"", v.replace('"', ""));
            }
        }
        s
    }

    /// Sets the engine options' server model and version.
    pub fn apply(&self, options: &mut EngineOptions) {
        options.remote.model = self.server_model.clone().unwrap_or_default();
        options.remote.version = self.server_model_version.clone().unwrap_or_default();
    }
}

/// Triton backends `serve-repo` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// Triton's ONNX Runtime backend (production; CPU or GPU).
    Onnxruntime,
    /// Triton's Python backend running onnxruntime on the CPU (where the ONNX Runtime backend
    /// is not installed, e.g. PyPI's nvidia-pytriton).
    Python,
}

/// Options of `rsstyle serve-repo`.
#[derive(Debug, clap::Args)]
pub struct ServeRepoArgs {
    /// The ONNX models, then the model repository folder (made if missing), e.g.
    /// `models/paintings.onnx models/paintings-lite.onnx repo/`.
    #[arg(required = true, num_args = 2.., value_name = "MODEL.onnx… DIR")]
    pub paths: Vec<PathBuf>,
    /// The model's name on the server (one model only; default: the file's name without .onnx).
    #[arg(long)]
    pub name: Option<String>,
    /// The Triton backend that runs the models.
    #[arg(long, value_enum, default_value = "onnxruntime")]
    pub backend: BackendArg,
    /// Largest batch Triton's dynamic batcher forms from requests (0: no batching).
    #[arg(long, default_value_t = 8)]
    pub max_batch_size: usize,
    /// How long the dynamic batcher holds a request for others to join it, µs.
    #[arg(long, default_value_t = 0)]
    pub max_queue_delay_us: u64,
    /// Model instances (0: Triton's default: one per GPU, or one on the CPU).
    #[arg(long, default_value_t = 0)]
    pub instances: u32,
    /// onnxruntime intra-op threads per instance (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
    /// Replace model folders that exist.
    #[arg(long)]
    pub force: bool,
}

/// Runs `rsstyle serve-repo`.
pub fn serve_repo(args: &ServeRepoArgs) -> Result<()> {
    let (repo, models) = args.paths.split_last().expect("clap requires two paths");
    if args.name.is_some() && models.len() > 1 {
        bail!("--name names one model, but {} are given", models.len());
    }
    if repo.extension().is_some_and(|e| e == "onnx") {
        bail!(
            "the last path, '{}', is the repository folder, not a model",
            repo.display()
        );
    }
    let options = RepoOptions {
        name: args.name.clone(),
        backend: match args.backend {
            BackendArg::Onnxruntime => Backend::OnnxRuntime,
            BackendArg::Python => Backend::Python,
        },
        max_batch_size: args.max_batch_size,
        max_queue_delay_us: args.max_queue_delay_us,
        instances: args.instances,
        threads: args.threads,
        force: args.force,
    };
    for model in models {
        let folder = repository::write_model(model, repo, &options)?;
        println!("wrote {}", folder.display());
    }
    println!(
        "serve it with: tritonserver --model-repository={}   (gRPC on port 8001)\n\
         then style with: --device grpc://HOST:8001 (element: device=grpc://HOST:8001)",
        repo.display()
    );
    Ok(())
}
