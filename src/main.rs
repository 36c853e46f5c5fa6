//! The `rsstyle` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

mod app;

use clap::{Parser, Subcommand};
use gstrsstyle::model::{ManifestPatch, Model};

#[derive(Parser)]
#[command(
    name = "rsstyle",
    version,
    about = "Real-time neural style transfer for video"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Style a camera (or any source) live: preview window, recording, virtual camera.
    Live(app::live::LiveArgs),
    /// Serve a styled stream over RTSP.
    Serve(app::serve::ServeArgs),
    /// List the cameras that can be opened.
    Cameras,
    /// List the bundled models with their styles.
    Models,
    /// Style a video file: every frame, same timestamps, audio kept.
    Convert(app::convert::ConvertArgs),
    /// Measure the element's throughput and latency against bare inference on a model.
    Bench(app::bench::BenchArgs),
    /// Print what a model expects and returns (its manifest).
    Inspect {
        /// The ONNX model.
        model: PathBuf,
        /// A manifest JSON file to apply (default: MODEL.json beside the model, if present).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect {
            model,
            manifest,
            json,
        } => inspect(&model, manifest.as_deref(), json),
        Command::Bench(args) => app::bench::run(&args).map(|_| ()),
        Command::Live(args) => app::live::run(&args),
        Command::Cameras => app::live::list(),
        Command::Serve(args) => app::serve::run(&args),
        Command::Models => app::models::list(),
        Command::Convert(args) => match app::convert::main(&args) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rsstyle: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn inspect(
    path: &std::path::Path,
    manifest: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<()> {
    let model = Model::load(path, manifest, &ManifestPatch::default())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&model.manifest)?);
    } else {
        println!("model:         {}", model.path.display());
        println!("manifest from: {}", model.sources.join(" + "));
        if let Some(opset) = model.opset {
            println!("opset:         {opset}");
        }
        print!("{}", model.manifest.describe());
    }
    Ok(())
}
