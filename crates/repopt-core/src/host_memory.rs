//! Which devices hold their tensors in host memory, where reading a tensor's data costs no
//! transfer (and so a step may run as one pass over it).

use burn::tensor::Device;

/// Whether `device`'s tensors live in host memory, so that reading their data costs no
/// transfer: Burn's `flex` and `ndarray` CPU backends (with this crate's features of the same
/// names), told by the device's type.
pub fn is_host_memory(device: &Device) -> bool {
    use burn_dispatch::DispatchDevice;
    match device.clone().without_autodiff().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        DispatchDevice::NdArray(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flex_is_host_memory() {
        assert!(is_host_memory(&Device::flex()));
        assert!(is_host_memory(&Device::flex().autodiff()));
    }
}
