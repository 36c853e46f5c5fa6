//! Which device inference runs on.

use std::fmt;
use std::str::FromStr;

/// An inference device, as written in the `device` property and `--device` flags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// CUDA execution provider on GPU N; an error when it cannot be used.
    Cuda(u32),
    /// TensorRT execution provider on GPU N (with the CUDA provider for the nodes TensorRT does
    /// not take); an error when it cannot be used.
    TensorRt(u32),
    /// CUDA on GPU 0 when it can be used, else the CPU (with a warning).
    Auto,
    /// An inference server speaking the KServe v2 / Open Inference Protocol over gRPC
    /// (`grpc://HOST[:PORT]`, port 8001 by default as Triton's): see [`super::remote`].
    Server(super::remote::ServerAddress),
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "unknown device '{s}': expected cpu, cuda, cuda:N, tensorrt, tensorrt:N, auto or grpc://HOST:PORT"
            )
        };
        if let Some(address) = super::remote::ServerAddress::parse_url(s.trim()) {
            return address.map(Device::Server);
        }
        match s.trim() {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::Auto),
            "cuda" => Ok(Device::Cuda(0)),
            "tensorrt" => Ok(Device::TensorRt(0)),
            other => {
                let gpu = |prefix: &str| other.strip_prefix(prefix).and_then(|n| n.parse().ok());
                gpu("cuda:")
                    .map(Device::Cuda)
                    .or_else(|| gpu("tensorrt:").map(Device::TensorRt))
                    .ok_or_else(bad)
            }
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::TensorRt(n) => write!(f, "tensorrt:{n}"),
            Device::Auto => f.write_str("auto"),
            Device::Server(address) => address.fmt(f),
        }
    }
}

/// How frames travel to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameIo {
    /// Bytes on a GPU, float tensors on the CPU.
    #[default]
    Auto,
    /// Float tensors in the model's layout, converted on the host.
    Float,
    /// RGB bytes; the conversions run inside the model's graph on the engine's device.
    Bytes,
}

impl FromStr for FrameIo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(FrameIo::Auto),
            "float" => Ok(FrameIo::Float),
            "bytes" => Ok(FrameIo::Bytes),
            other => Err(format!(
                "unknown frame I/O '{other}': expected auto, float or bytes"
            )),
        }
    }
}

/// Settings of ONNX Runtime's CUDA execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaTuning {
    /// Run convolutions channels-last (NHWC), the layout tensor cores want.
    pub prefer_nhwc: bool,
    /// Allow TF32 tensor-core math in float32 convolutions and matrix products.
    pub tf32: bool,
    /// Time every cuDNN convolution algorithm on the first run of each shape and keep the
    /// fastest (otherwise cuDNN's heuristic choice).
    pub exhaustive_search: bool,
    /// Capture the model as a CUDA graph on the first runs and replay it (fewer kernel
    /// launches; one frame size and batch size per engine; frames as bytes only).
    pub graph: bool,
}

/// Settings of ONNX Runtime's TensorRT execution provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRtTuning {
    /// Let TensorRT run layers in float16 (a float32 model's output then differs by about 1 in
    /// 255).
    pub fp16: bool,
    /// Folder of built TensorRT engines and timing caches, reused across runs (building an
    /// engine takes from seconds to minutes per model, frame size and batch size); `None`:
    /// `$XDG_CACHE_HOME/rsstyle/tensorrt` or `~/.cache/rsstyle/tensorrt`.
    pub cache: Option<std::path::PathBuf>,
}

impl Default for TensorRtTuning {
    fn default() -> Self {
        Self {
            fp16: true,
            cache: None,
        }
    }
}

impl TensorRtTuning {
    /// The engine cache folder: the configured one or the per-user default.
    pub fn cache_folder(&self) -> Option<std::path::PathBuf> {
        if let Some(dir) = &self.cache {
            return Some(dir.clone());
        }
        let env = |k| std::env::var_os(k).filter(|v| !v.is_empty());
        let base = env("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .or_else(|| env("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
        Some(base.join("rsstyle").join("tensorrt"))
    }
}

impl Default for CudaTuning {
    fn default() -> Self {
        Self {
            prefer_nhwc: false,
            tf32: true,
            exhaustive_search: true,
            graph: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("auto".parse(), Ok(Device::Auto));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        assert_eq!("tensorrt".parse(), Ok(Device::TensorRt(0)));
        assert_eq!("tensorrt:1".parse(), Ok(Device::TensorRt(1)));
        assert_eq!(Device::TensorRt(1).to_string(), "tensorrt:1");
    }

    #[test]
    fn parses_frame_io() {
        assert_eq!("bytes".parse(), Ok(FrameIo::Bytes));
        assert_eq!("float".parse(), Ok(FrameIo::Float));
        assert_eq!("auto".parse(), Ok(FrameIo::Auto));
        assert_eq!(
            "u8".parse::<FrameIo>(),
            Err("unknown frame I/O 'u8': expected auto, float or bytes".to_string())
        );
    }

    #[test]
    fn rejects_unknown_devices_naming_them() {
        assert_eq!(
            "gpu".parse::<Device>(),
            Err(
                "unknown device 'gpu': expected cpu, cuda, cuda:N, tensorrt, tensorrt:N, auto or grpc://HOST:PORT"
                    .to_string()
            )
        );
        assert!("cuda:x".parse::<Device>().is_err());
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("tensorrt:x".parse::<Device>().is_err());
    }
}
