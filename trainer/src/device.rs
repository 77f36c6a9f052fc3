//! Where the maths runs: the pure-Rust `flex` backend (default build), or libtorch on CPU or
//! CUDA when the trainer is built with `--features tch`.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Flex,
    Libtorch,
}

shared::named_enum!(Backend, "backend", serde, {
    Backend::Flex => "flex",
    Backend::Libtorch => "libtorch" | "tch", // `tch`: the cargo feature's name
});

/// `--device`: `cpu` or `cuda:N`; spelled so in run.json too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "Written")]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

impl From<DeviceSpec> for String {
    fn from(device: DeviceSpec) -> String {
        device.to_string()
    }
}

/// A device as run.json holds it: `"cpu"`, `"cuda:0"`, or as versions before 2026-12-08 wrote
/// it (`"Cpu"`, `{"Cuda": 0}`), so that their run folders still export and resume.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Written {
    Name(String),
    Cuda {
        #[serde(rename = "Cuda")]
        index: usize,
    },
}

impl TryFrom<Written> for DeviceSpec {
    type Error = String;
    fn try_from(written: Written) -> Result<Self, String> {
        match written {
            Written::Name(name) if name == "Cpu" => Ok(DeviceSpec::Cpu),
            Written::Name(name) => name.parse(),
            Written::Cuda { index } => Ok(DeviceSpec::Cuda(index)),
        }
    }
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
        DeviceSpec::Cuda(i) => {
            let cuda = Device::libtorch_cuda(i);
            usable(&cuda).map_err(|why| {
                anyhow::anyhow!(
                    "--device {device}: libtorch cannot use it ({why}). A CUDA device needs an NVIDIA driver, a visible GPU, \
                     and a trainer built against a libtorch with CUDA (LIBTORCH_USE_PYTORCH=1 with the CUDA PyTorch wheel; \
                     see README, Trainer)"
                )
            })?;
            cuda
        }
    })
}

/// Keeps cuBLAS and cuDNN in full fp32 (NVIDIA_TF32_OVERRIDE=0) unless the caller's environment
/// says otherwise. PyTorch lets cuDNN convolutions use TF32 (a 10-bit mantissa) on Ampere and later
/// GPUs: measured on an H200, the 17-class export's parity gate then failed at 2.1e-4 against the
/// board's fp32 (tolerance 1e-4) with the model itself unchanged. The frozen trunk's pass took
/// 2.6 s for 1 360 photos there, so exactness wins; `NVIDIA_TF32_OVERRIDE=1` trades it back.
/// Those libraries read it when their first handle is made; the `trainer` binary calls this first
/// thing in `main`, before any thread exists (the environment is not safe to change later). It
/// does nothing without an NVIDIA library.
///
/// # Safety
/// No other thread may read or write the environment meanwhile: call it before starting any.
pub unsafe fn keep_gpu_in_full_fp32() {
    const KNOB: &str = "NVIDIA_TF32_OVERRIDE";
    if std::env::var_os(KNOB).is_none() {
        // SAFETY: the caller guarantees no other thread is running.
        unsafe { std::env::set_var(KNOB, "0") };
    }
}

/// Whether a tensor can be made on `device`. Burn and libtorch fail there with a panic (a CPU-only
/// libtorch, no driver, no GPU): caught here, at start, and said plainly, instead of mid-training.
#[cfg(feature = "tch")]
fn usable(device: &Device) -> Result<(), String> {
    use burn::tensor::Tensor;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let tried = std::panic::catch_unwind(|| Tensor::<1>::zeros([1], device).into_data());
    std::panic::set_hook(hook);
    tried.map(drop).map_err(|panic| {
        let text = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        // libtorch's messages run to pages (every backend, a C++ stack): the first sentence says it.
        let text = text.unwrap_or_else(|| "it failed".into());
        let first = text.split("\\n").next().unwrap_or("").lines().next().unwrap_or("");
        first.split(". ").next().unwrap_or(first).chars().take(300).collect()
    })
}

#[cfg(not(feature = "tch"))]
fn libtorch_device(device: DeviceSpec) -> anyhow::Result<Device> {
    anyhow::bail!(
        "this trainer was built without libtorch, which {device} with --backend libtorch needs; rebuild with \
         `scripts/setup.sh --libtorch && . scripts/env.sh && cargo build --release --features flowercam-trainer/tch` (README, set-up)"
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

    /// Here (no GPU, or no CUDA in the build) asking for CUDA is a plain error, not a panic.
    #[test]
    #[cfg(feature = "tch")]
    fn an_unusable_cuda_device_is_an_error_at_start() {
        if let Err(e) = burn_device(Backend::Libtorch, DeviceSpec::Cuda(0)) {
            assert!(e.to_string().contains("--device cuda:0: libtorch cannot use it"), "{e}");
        }
    }

    #[test]
    fn run_json_spells_devices_as_the_command_line_and_reads_earlier_spellings() {
        assert_eq!(serde_json::to_string(&DeviceSpec::Cuda(1)).unwrap(), "\"cuda:1\"");
        assert_eq!(serde_json::to_string(&Backend::Libtorch).unwrap(), "\"libtorch\"");
        for (written, device) in [
            ("\"cpu\"", DeviceSpec::Cpu),
            ("\"cuda:2\"", DeviceSpec::Cuda(2)),
            ("\"Cpu\"", DeviceSpec::Cpu),
            ("{\"Cuda\":3}", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(serde_json::from_str::<DeviceSpec>(written).unwrap(), device, "{written}");
        }
        assert!(serde_json::from_str::<DeviceSpec>("\"gpu\"").is_err());
        assert_eq!(serde_json::from_str::<Backend>("\"Flex\"").unwrap(), Backend::Flex);
        assert_eq!("tch".parse::<Backend>(), Ok(Backend::Libtorch), "the cargo feature's name, as before");
    }

    #[test]
    fn flex_cannot_run_on_cuda() {
        assert!(burn_device(Backend::Flex, DeviceSpec::Cuda(0)).is_err());
        assert!(burn_device(Backend::Flex, DeviceSpec::Cpu).is_ok());
    }
}
