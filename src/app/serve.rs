//! `rsstyle serve`: a styled stream over RTSP.

use anyhow::{Context, Result};
use gst_rtsp_server::prelude::*;

/// Options of `rsstyle serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The ONNX style model.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// "test" (a test pattern), a video file, or a GStreamer source description such as
    /// "v4l2src device=/dev/video0".
    #[arg(long, default_value = "test")]
    pub source: String,
    /// Address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// RTSP port.
    #[arg(long, default_value_t = 8554)]
    pub port: u16,
    /// Path of the stream: rtsp://ADDRESS:PORT/PATH.
    #[arg(long, default_value = "style")]
    pub path: String,
    /// Size of the served video, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x480")]
    pub size: String,
    /// CPU inference threads (0: the CPUs this process may use, by affinity and CPU quota).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
}

/// The launch line of the served media: source → style → H.264 RTP payloader.
fn media_launch(args: &ServeArgs, width: u32, height: u32) -> String {
    let source = match args.source.as_str() {
        "test" => format!(
            "videotestsrc is-live=true ! video/x-raw,width={width},height={height},framerate=30/1"
        ),
        file if std::path::Path::new(file).is_file() => format!(
            "filesrc location=\"{file}\" ! decodebin ! videoconvert ! videoscale ! video/x-raw,width={width},height={height}"
        ),
        description => description.to_string(),
    };
    format!(
        "( {source} ! videoconvert ! rsstyle model=\"{}\" threads={} leaky=true ! videoconvert \
         ! video/x-raw,format=I420 ! x264enc tune=zerolatency bframes=0 ! rtph264pay name=pay0 pt=96 )",
        args.model.display(),
        args.threads
    )
}

/// Serves until Ctrl-C.
pub fn run(args: &ServeArgs) -> Result<()> {
    if !args.model.is_file() {
        anyhow::bail!("model file '{}' does not exist", args.model.display());
    }
    let (width, height): (u32, u32) = super::parse_size(&args.size)?;
    gst::init()?;
    gstrsstyle::element::register(None)?;
    let server = gst_rtsp_server::RTSPServer::new();
    server.set_address(&args.address);
    server.set_service(&args.port.to_string());
    let factory = gst_rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(&media_launch(args, width, height));
    // One styled stream shared by every client.
    factory.set_shared(true);
    let mounts = server.mount_points().context("RTSP mount points")?;
    mounts.add_factory(&format!("/{}", args.path.trim_start_matches('/')), factory);
    let main_loop = gst::glib::MainLoop::new(None, false);
    let _source = server
        .attach(None)
        .with_context(|| format!("cannot listen on {}:{}", args.address, args.port))?;
    eprintln!(
        "rsstyle: serving rtsp://{}:{}/{}",
        args.address,
        server.bound_port(),
        args.path.trim_start_matches('/')
    );
    {
        let main_loop = main_loop.clone();
        ctrlc::set_handler(move || main_loop.quit()).context("Ctrl-C handler")?;
    }
    main_loop.run();
    Ok(())
}
