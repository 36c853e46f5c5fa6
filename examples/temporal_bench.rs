//! The cost of the element's temporal smoothing (`rsstyle::frame::temporal::Stabilizer`) per
//! frame, against a plain copy of the frame measured alternately in the same run.
//!
//! ```sh
//! cargo run --release --example temporal_bench -- [WIDTHxHEIGHT] [FRAMES]
//! ```
//!
//! Frames: a static textured picture with ±2 noise each frame and a 120×160 block moving 6
//! pixels a frame (so the static, soft-threshold and moving paths all run), styled by a
//! stand-in (a fixed per-pixel transform of the input). Prints, per frame for RGBx and RGB, the
//! median of the thread's CPU time (what the smoothing costs, robust to other processes taking
//! the cores) and the median and 10th–90th percentile of wall time.

use std::time::Instant;

use gstrsstyle::frame::temporal::Stabilizer;
use gstrsstyle::frame::{FrameMut, FrameRef, PixelFormat};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (width, height) = args
        .get(1)
        .and_then(|s| s.split_once('x'))
        .map(|(w, h)| (w.parse().expect("width"), h.parse().expect("height")))
        .unwrap_or((640usize, 480usize));
    let frames: usize = args.get(2).map_or(300, |s| s.parse().expect("frames"));
    println!(
        "temporal smoothing, {width}x{height}, {frames} frames; {} ({} cores)",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<6} {:>13} {:>13} {:>15} {:>13} {:>13}",
        "format", "smoothing cpu", "smoothing wall", "wall p10–p90", "copy cpu", "cpu ratio"
    );
    for format in [PixelFormat::Rgbx, PixelFormat::Rgb] {
        let m = measure(width, height, frames, format);
        println!(
            "{:<6} {:>10.3} ms {:>11.3} ms {:>15} {:>10.3} ms {:>13.2}",
            format.name(),
            percentile(&m.smooth_cpu, 0.5),
            percentile(&m.smooth_wall, 0.5),
            format!(
                "{:.3}–{:.3}",
                percentile(&m.smooth_wall, 0.1),
                percentile(&m.smooth_wall, 0.9)
            ),
            percentile(&m.copy_cpu, 0.5),
            percentile(&m.smooth_cpu, 0.5) / percentile(&m.copy_cpu, 0.5)
        );
    }
}

/// Per-frame times (ms) of the stabiliser and of a copy of the output frame, alternating.
struct Times {
    smooth_cpu: Vec<f64>,
    smooth_wall: Vec<f64>,
    copy_cpu: Vec<f64>,
}

/// This thread's CPU time, ms.
fn thread_cpu_ms() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write; the clock id is a constant the kernel knows.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

fn measure(width: usize, height: usize, frames: usize, format: PixelFormat) -> Times {
    let bpp = format.bytes_per_pixel();
    let stride = width * bpp;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 5) as i32 - 2
    };
    // Eight input frames and their "styled" versions, cycled.
    let mut inputs = Vec::new();
    let mut styled = Vec::new();
    for t in 0..8usize {
        let mut input = vec![255u8; stride * height];
        for y in 0..height {
            for x in 0..width {
                let moving = (y / 120 == 1) && (x + 640 - 6 * t * 8) % 640 < 160;
                for c in 0..3 {
                    let base = if moving {
                        230
                    } else {
                        ((x * 3 + y * 5 + c * 40) % 200) as i32
                    };
                    input[y * stride + x * bpp + c] = (base + 20 + noise()).clamp(0, 255) as u8;
                }
            }
        }
        let out: Vec<u8> = input
            .iter()
            .enumerate()
            .map(|(i, &v)| v.wrapping_mul(7).wrapping_add((i % 13) as u8))
            .collect();
        inputs.push(input);
        styled.push(out);
    }
    let mut stabilizer = Stabilizer::default();
    let mut output = vec![0u8; stride * height];
    let mut copy = vec![0u8; stride * height];
    let mut times = Times {
        smooth_cpu: Vec::new(),
        smooth_wall: Vec::new(),
        copy_cpu: Vec::new(),
    };
    for i in 0..frames + 10 {
        let k = i % inputs.len();
        output.copy_from_slice(&styled[k]);
        let input = FrameRef {
            data: &inputs[k],
            width,
            height,
            stride,
            format,
        };
        let mut out = FrameMut {
            data: &mut output,
            width,
            height,
            stride,
            format,
        };
        let (wall, cpu) = (Instant::now(), thread_cpu_ms());
        stabilizer.apply(&input, &mut out, 0.8);
        let (s_cpu, s_wall) = (thread_cpu_ms() - cpu, wall.elapsed().as_secs_f64() * 1e3);
        let cpu = thread_cpu_ms();
        copy.copy_from_slice(std::hint::black_box(&output));
        std::hint::black_box(&copy);
        let c_cpu = thread_cpu_ms() - cpu;
        // The first frames warm caches and allocate the history.
        if i >= 10 {
            times.smooth_cpu.push(s_cpu);
            times.smooth_wall.push(s_wall);
            times.copy_cpu.push(c_cpu);
        }
    }
    times
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}
