//! The machine a measurement ran on: CPU model, cores, the instruction-set extensions the CPU
//! offers and which of them ONNX Runtime's kernels use, the load, and a measured
//! single-precision GEMM rate. Benchmarks print it beside their figures, so that figures from
//! different machines compare as ratios (fps per GFLOP/s of GEMM).

use std::time::{Duration, Instant};

use serde::Serialize;

/// What a benchmark ran on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// CPU model as the kernel reports it (`/proc/cpuinfo` `model name`), with family and
    /// model numbers where the name is generic (virtual machines often say just "AMD EPYC").
    pub cpu: String,
    /// Online logical CPUs.
    pub cpus: usize,
    /// CPUs this process may use (affinity mask and cgroup quota).
    pub usable_cpus: usize,
    /// The vector and matrix extensions among [`EXTENSIONS`] that the CPU offers.
    pub extensions: Vec<String>,
    /// The kernels ONNX Runtime's MLAS library picks on this CPU for float32 and for int8
    /// (u8 activations × s8 weights) matrix products; `None` off x86-64.
    pub ort_fp32_kernels: Option<String>,
    pub ort_int8_kernels: Option<String>,
    /// 1-minute load average when probed (`/proc/loadavg`): other work on the machine.
    pub load: Option<f64>,
    /// Measured float32 GEMM rate on all usable CPUs ([`sgemm_gflops`]), GFLOP/s.
    pub sgemm_gflops: Option<f64>,
}

/// The CPU flags (Linux `/proc/cpuinfo` spelling) that matter for inference speed, in the
/// order they are listed.
pub const EXTENSIONS: &[&str] = &[
    "sse4_1",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_int8",
    "amx_bf16",
    // aarch64 (`Features`)
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
];

/// Side of the square matrices [`sgemm_gflops`] multiplies.
pub const SGEMM_SIZE: usize = 1024;

impl Machine {
    /// Reads this machine's description and measures its GEMM rate for about `sgemm_time`
    /// (no measurement when zero).
    pub fn probe(sgemm_time: Duration) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        let mut machine = Self::from_cpuinfo(&cpuinfo, usable);
        machine.load = load;
        if !sgemm_time.is_zero() {
            machine.sgemm_gflops = Some(sgemm_gflops(usable, sgemm_time));
        }
        machine
    }

    /// The description in `cpuinfo` (the text of `/proc/cpuinfo`), for a process that may use
    /// `usable_cpus`; no load or GEMM rate.
    pub fn from_cpuinfo(cpuinfo: &str, usable_cpus: usize) -> Self {
        let first = cpuinfo.split("\n\n").next().unwrap_or_default();
        let field = |name: &str| {
            first.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        let cpus = cpuinfo
            .lines()
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(k, _)| k.trim() == "processor")
            })
            .count()
            .max(1);
        let name = field("model name")
            .or_else(|| field("Hardware"))
            .or_else(|| field("CPU implementer").map(|i| format!("CPU implementer {i}")))
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let cpu = match (field("cpu family"), field("model")) {
            (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
            _ => name,
        };
        let flags: Vec<&str> = field("flags")
            .or_else(|| field("Features"))
            .map(|f| f.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| EXTENSIONS.iter().find(|e| *e == f).copied())
            .collect();
        let extensions: Vec<String> = EXTENSIONS
            .iter()
            .filter(|e| flags.contains(e))
            .map(|e| e.to_string())
            .collect();
        let x86 = field("flags").is_some();
        let (fp32, int8) = if x86 {
            let (fp32, int8) = mlas_kernels(&extensions);
            (Some(fp32.to_string()), Some(int8.to_string()))
        } else {
            (None, None)
        };
        Self {
            cpu,
            cpus,
            usable_cpus,
            extensions,
            ort_fp32_kernels: fp32,
            ort_int8_kernels: int8,
            load: None,
            sgemm_gflops: None,
        }
    }

    /// The one-line description benchmarks print.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "{}, {} CPUs ({} usable), {}",
            self.cpu,
            self.cpus,
            self.usable_cpus,
            if self.extensions.is_empty() {
                "no vector extensions listed".to_string()
            } else {
                self.extensions.join(" ")
            }
        );
        if let (Some(fp32), Some(int8)) = (&self.ort_fp32_kernels, &self.ort_int8_kernels) {
            line.push_str(&format!(
                "; ONNX Runtime kernels: float32 {fp32}, int8 {int8}"
            ));
        }
        if let Some(g) = self.sgemm_gflops {
            line.push_str(&format!(
                "; sgemm {g:.1} GFLOP/s ({SGEMM_SIZE}³, {} threads)",
                self.usable_cpus
            ));
        }
        if let Some(load) = self.load {
            line.push_str(&format!("; load {load:.2}"));
        }
        line
    }
}

/// The float32 and int8 GEMM kernels ONNX Runtime's MLAS library dispatches to on an x86-64
/// CPU with `extensions`, in its order of preference (onnxruntime `core/mlas/lib/platform.cpp`).
/// Without AVX-512 VNNI, AVX-VNNI or AMX, int8 products go through `vpmaddubsw`, which
/// saturates its 16-bit pair sums.
pub fn mlas_kernels(extensions: &[impl AsRef<str>]) -> (&'static str, &'static str) {
    let has = |e: &str| extensions.iter().any(|x| x.as_ref() == e);
    let fp32 = if has("avx512f") {
        "AVX-512F"
    } else if has("avx2") && has("fma") {
        "AVX2/FMA3"
    } else if has("avx") {
        "AVX"
    } else {
        "SSE2"
    };
    let int8 = if has("amx_int8") {
        "AMX"
    } else if has("avx512_vnni") {
        "AVX-512 VNNI"
    } else if has("avx512bw") {
        "AVX-512BW (vpmaddubsw)"
    } else if has("avx_vnni") {
        "AVX-VNNI"
    } else if has("avx2") && has("fma") {
        "AVX2 (vpmaddubsw)"
    } else if has("sse4_1") {
        "SSE4.1"
    } else {
        "SSE2"
    };
    (fp32, int8)
}

/// Measures a float32 GEMM rate (GFLOP/s): [`SGEMM_SIZE`]² × [`SGEMM_SIZE`]² products on
/// `threads` threads (the `gemm` crate candle uses, BLIS-style kernels for the CPU's widest
/// vectors), repeated for about `time` after one warm-up; the median product's rate.
pub fn sgemm_gflops(threads: usize, time: Duration) -> f64 {
    let n = SGEMM_SIZE;
    // Values that stay finite and are not all alike (denormals or zeros could take other paths).
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7919) % 1009) as f32 / 1009.0)
        .collect();
    let b: Vec<f32> = (0..n * n)
        .map(|i| ((i * 104_729) % 997) as f32 / 997.0)
        .collect();
    let mut c = vec![0f32; n * n];
    let mut product = || {
        let started = Instant::now();
        sgemm(n, &a, &b, &mut c, threads);
        started.elapsed()
    };
    product();
    let started = Instant::now();
    let mut times = Vec::new();
    while times.len() < 3 || (started.elapsed() < time && times.len() < 1000) {
        times.push(product());
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    2.0 * (n * n * n) as f64 / median / 1e9
}

/// `c = a · b` for row-major n×n matrices, on `threads` threads.
fn sgemm(n: usize, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    assert!(a.len() == n * n && b.len() == n * n && c.len() == n * n);
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let n_i = n as isize;
    // SAFETY: a, b and c are n×n row-major matrices (row stride n, column stride 1), as checked
    // above, borrowed across the call; c is borrowed mutably, so it aliases neither a nor b.
    unsafe {
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            1,
            n_i,
            false,
            a.as_ptr(),
            1,
            n_i,
            b.as_ptr(),
            1,
            n_i,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPYC: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n\
        model name\t: AMD EPYC\nflags\t\t: fpu sse4_1 sse4_2 avx f16c avx2 fma bmi2\n\n\
        processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\n\
        model name\t: AMD EPYC\nflags\t\t: fpu sse4_1 sse4_2 avx f16c avx2 fma bmi2\n";

    #[test]
    fn cpuinfo_gives_model_cores_and_extensions() {
        let m = Machine::from_cpuinfo(EPYC, 1);
        assert_eq!(m.cpu, "AMD EPYC (family 25, model 1)");
        assert_eq!((m.cpus, m.usable_cpus), (2, 1));
        assert_eq!(m.extensions, ["sse4_1", "avx", "avx2", "fma", "f16c"]);
        assert_eq!(m.ort_fp32_kernels.as_deref(), Some("AVX2/FMA3"));
        assert_eq!(m.ort_int8_kernels.as_deref(), Some("AVX2 (vpmaddubsw)"));
        assert_eq!(
            m.describe(),
            "AMD EPYC (family 25, model 1), 2 CPUs (1 usable), sse4_1 avx avx2 fma f16c; \
             ONNX Runtime kernels: float32 AVX2/FMA3, int8 AVX2 (vpmaddubsw)"
        );
    }

    #[test]
    fn arm_cpus_list_their_features_and_no_x86_kernels() {
        let text = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd asimddp i8mm sve\n\
                    CPU implementer\t: 0x41\n";
        let m = Machine::from_cpuinfo(text, 1);
        assert_eq!(m.cpu, "CPU implementer 0x41");
        assert_eq!(m.extensions, ["asimd", "asimddp", "i8mm", "sve"]);
        assert_eq!(m.ort_int8_kernels, None);
    }

    #[test]
    fn mlas_prefers_the_widest_int8_instructions() {
        assert_eq!(
            mlas_kernels(&["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"]),
            ("AVX-512F", "AVX-512 VNNI")
        );
        assert_eq!(
            mlas_kernels(&["avx2", "fma", "avx_vnni"]),
            ("AVX2/FMA3", "AVX-VNNI")
        );
        assert_eq!(mlas_kernels(&["sse4_1"]), ("SSE2", "SSE4.1"));
    }

    #[test]
    fn sgemm_multiplies_row_major_matrices() {
        // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]]
        let mut c = [0.0; 4];
        sgemm(2, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &mut c, 1);
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        let n = 67;
        let a: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32).collect();
        let b: Vec<f32> = (0..n * n).map(|i| (i % 3) as f32).collect();
        let mut c = vec![0.0; n * n];
        sgemm(n, &a, &b, &mut c, 2);
        for (i, j) in [(0, 0), (13, 61), (66, 66)] {
            let want: f32 = (0..n).map(|k| a[i * n + k] * b[k * n + j]).sum();
            assert_eq!(c[i * n + j], want, "({i}, {j})");
        }
    }
}
