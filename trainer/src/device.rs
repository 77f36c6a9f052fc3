//! Where the maths runs: the pure-Rust `flex` backend (default build), or libtorch on CPU or
//! CUDA when the trainer is built with `--features tch`.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Backend {
    Flex,
    Libtorch,
}

/// `--device`: `cpu` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("unknown device '{s}' (expected cpu or cuda:N)")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flex" => Ok(Backend::Flex),
            "libtorch" | "tch" => Ok(Backend::Libtorch),
            _ => Err(format!("unknown backend '{s}' (expected flex or libtorch)")),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Flex => "flex",
            Backend::Libtorch => "libtorch",
        })
    }
}

/// The backend used when `--backend` is not given: libtorch for CUDA; on the CPU the fastest
/// one built in, libtorch when the build has it (its convolutions ran 2.3x faster than flex's
/// here), flex otherwise.
pub fn default_backend(device: DeviceSpec) -> Backend {
    match device {
        DeviceSpec::Cuda(_) => Backend::Libtorch,
        DeviceSpec::Cpu if libtorch_available() => Backend::Libtorch,
        DeviceSpec::Cpu => Backend::Flex,
    }
}

pub fn libtorch_available() -> bool {
    cfg!(feature = "tch")
}

/// The Burn device for a backend and device choice, or why it cannot be had in this build.
pub fn burn_device(backend: Backend, device: DeviceSpec) -> anyhow::Result<Device> {
    match (backend, device) {
        (Backend::Flex, DeviceSpec::Cpu) => Ok(Device::flex()),
        (Backend::Flex, DeviceSpec::Cuda(_)) => {
            anyhow::bail!("the flex backend runs on the CPU only; use --backend libtorch for {device}")
        }
        (Backend::Libtorch, _) => libtorch_device(device),
    }
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn-tch is deprecated upstream but is Burn 0.22's libtorch/CUDA path.
fn libtorch_device(device: DeviceSpec) -> anyhow::Result<Device> {
    Ok(match device {
        DeviceSpec::Cpu => Device::libtorch(),
        DeviceSpec::Cuda(i) => Device::libtorch_cuda(i),
    })
}

#[cfg(not(feature = "tch"))]
fn libtorch_device(device: DeviceSpec) -> anyhow::Result<Device> {
    anyhow::bail!(
        "this trainer was built without libtorch, which {device} with --backend libtorch needs; rebuild with \
         `cargo build --release -p flowercam-trainer --features tch` after scripts/setup-libtorch.sh (see README)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        assert_eq!(default_backend(DeviceSpec::Cuda(0)), Backend::Libtorch);
        let cpu = if cfg!(feature = "tch") { Backend::Libtorch } else { Backend::Flex };
        assert_eq!(default_backend(DeviceSpec::Cpu), cpu);
    }

    #[test]
    fn flex_cannot_run_on_cuda() {
        assert!(burn_device(Backend::Flex, DeviceSpec::Cuda(0)).is_err());
        assert!(burn_device(Backend::Flex, DeviceSpec::Cpu).is_ok());
    }
}
