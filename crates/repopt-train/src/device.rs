//! Choosing the compute device from a string (`--device`).

use burn::tensor::Device;

use crate::error::{Result, TrainError};

/// The device names this build understands.
pub fn known_devices() -> Vec<&'static str> {
    let mut names = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        names.extend(["wgpu", "wgpu:N", "wgpu:cpu"]);
    }
    if cfg!(feature = "cuda") {
        names.extend(["cuda", "cuda:N"]);
    }
    names
}

/// `cpu` (Burn's `flex` backend); with the `wgpu` feature `wgpu` (the best adapter), `wgpu:N`
/// (discrete GPU N) or `wgpu:cpu` (a software adapter such as lavapipe); with the `cuda` feature
/// `cuda` or `cuda:N`. Devices are always chosen explicitly: Burn's default device changes with
/// the compiled-in backends.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    let (name, arg) = match spec.split_once(':') {
        Some((name, arg)) => (name, Some(arg)),
        None => (spec.as_str(), None),
    };
    let device = match (name, arg) {
        ("cpu" | "flex", None) => Some(Device::flex()),
        #[cfg(feature = "wgpu")]
        ("wgpu", arg) => wgpu_device(arg),
        #[cfg(feature = "cuda")]
        ("cuda", None) => Some(Device::cuda(0)),
        #[cfg(feature = "cuda")]
        ("cuda", Some(index)) => index.parse::<usize>().ok().map(Device::cuda),
        _ => None,
    };
    device.ok_or_else(|| {
        TrainError::Config(format!(
            "unknown or not compiled-in device `{spec}` (this build knows: {}; GPU backends are \
             cargo features: `--features wgpu` or `--features cuda`)",
            known_devices().join(", ")
        ))
    })
}

#[cfg(feature = "wgpu")]
fn wgpu_device(arg: Option<&str>) -> Option<Device> {
    use burn::tensor::DeviceKind;
    let kind = match arg {
        None => DeviceKind::DefaultDevice,
        Some("cpu") => DeviceKind::Cpu,
        Some(index) => DeviceKind::DiscreteGpu(index.parse().ok()?),
    };
    Some(Device::wgpu(kind))
}
