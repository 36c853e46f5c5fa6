//! Which device inference runs on.

use std::fmt;
use std::str::FromStr;

/// An inference device, as written in the `device` property and `--device` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// CUDA execution provider on GPU N; an error when it cannot be used.
    Cuda(u32),
    /// CUDA on GPU 0 when it can be used, else the CPU (with a warning).
    Auto,
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("unknown device '{s}': expected cpu, cuda, cuda:N or auto");
        match s.trim() {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::Auto),
            "cuda" => Ok(Device::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Auto => f.write_str("auto"),
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
    }

    #[test]
    fn rejects_unknown_devices_naming_them() {
        assert_eq!(
            "gpu".parse::<Device>(),
            Err("unknown device 'gpu': expected cpu, cuda, cuda:N or auto".to_string())
        );
        assert!("cuda:x".parse::<Device>().is_err());
        assert!("cuda:-1".parse::<Device>().is_err());
    }
}
