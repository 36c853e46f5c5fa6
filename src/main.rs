//! The `rsstyle` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

mod app;

use clap::{Parser, Subcommand};
use gstrsstyle::model::{ManifestPatch, Model};
use protobuf::Message;

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
    /// Write chosen frames of a video as PNG files (training images).
    Frames(app::frames::FramesArgs),
    /// Draw a before/after contact sheet of video frames styled by one or more models.
    Sheet(app::sheet::SheetArgs),
    /// Measure how models (with element settings) keep content and carry a style on held-out
    /// images: perceptual losses and PSNR/SSIM against a reference row.
    Evaluate(app::evaluate::EvaluateArgs),
    /// Train a model (fast neural style or CycleGAN) on candle.
    #[command(subcommand)]
    Train(app::train::TrainCommand),
    /// Write a trained checkpoint as an ONNX model for the element.
    Export(app::train::ExportArgs),
    /// Write an int8 copy of a float32 model, calibrated on images (faster on CPUs).
    Quantize(app::quantize::QuantizeArgs),
    /// Write Magenta's arbitrary-style network with one style image built in, as a model the
    /// element runs and `train style --teacher` distils.
    Teacher(app::train::TeacherArgs),
    /// Write a Triton Inference Server model repository for rsstyle models (styling then runs
    /// on the server with --device grpc://HOST:8001).
    ServeRepo(app::remote::ServeRepoArgs),
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
    if matches!(cli.command, Command::Inspect { .. } | Command::Models) {
        // Listings end quietly when their reader goes away (`rsstyle inspect M | head`), as
        // other command-line tools do, rather than panicking in `println!`. Only these: the
        // other commands talk to sockets, where a closed peer must stay an error.
        // SAFETY: no other thread runs yet; SIG_DFL is the disposition Rust's runtime replaced.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
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
        Command::Frames(args) => app::frames::run(&args)
            .map(|n| println!("wrote {n} frames to {}", args.output.display())),
        Command::Sheet(args) => app::sheet::run(&args),
        Command::Evaluate(args) => app::evaluate::run(&args).map(|_| ()),
        Command::Train(command) => app::train::run(&command),
        Command::Export(args) => app::train::export(&args),
        Command::Quantize(args) => app::quantize::run(&args),
        Command::Teacher(args) => app::train::teacher(&args),
        Command::ServeRepo(args) => app::remote::serve_repo(&args),
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
        let mut graph = onnx_protobuf::ModelProto::parse_from_bytes(&std::fs::read(path)?)?;
        let rewrites =
            gstrsstyle::onnx::rewrite::optimize(&mut graph, model.manifest.even_sized_output());
        println!("CPU rewrites:  {rewrites} (engine-options graph-rewrite)");
        for note in &model.notes {
            println!("note:          {note}");
        }
    }
    Ok(())
}
