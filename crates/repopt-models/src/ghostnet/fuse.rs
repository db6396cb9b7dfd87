//! Structural re-parameterisation of RepGhost: a `Rep` ghost module folded into one depthwise
//! conv with bias (the `Deploy` form).

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use super::config::GhostMode;
use super::either::Either;
use super::model::RepOptGhostNet;
use super::module::RepOptGhostModule;
use crate::error::{ModelError, Result};
use crate::norm::BatchNorm2d;

/// The identity kernel of a grouped conv (the official `identity_kernel_for_groupwise_kernel`):
/// a zero `[C, C/g, k, k]` tensor with
///
/// `I[c, c mod (C/g), ⌊k/2⌋, ⌊k/2⌋] = 1`,
///
/// since output channel `c` belongs to group `⌊c / (C/g)⌋` and reads input channel `c` at local
/// index `c mod (C/g)`. Fails unless `g > 0` divides `C` and `k > 0`.
pub fn groupwise_identity_kernel(
    channels: usize,
    kernel_size: usize,
    groups: usize,
    device: &Device,
) -> Result<Tensor<4>> {
    if groups == 0 || !channels.is_multiple_of(groups) || kernel_size == 0 {
        return Err(ModelError::Config {
            message: format!(
                "no identity kernel for {channels} channels, kernel {kernel_size}, {groups} groups"
            ),
        });
    }
    let per_group = channels / groups;
    let k = kernel_size;
    let mut values = vec![0.0f32; channels * per_group * k * k];
    for c in 0..channels {
        let d = c % per_group;
        values[((c * per_group + d) * k + k / 2) * k + k / 2] = 1.0;
    }
    let data = TensorData::new(values, [channels, per_group, k, k]);
    Ok(Tensor::from_data(data, device))
}

/// `(γ/σ, β − μ·γ/σ)` of a BN in eval mode, `σ = √(running_var + ε)`: `BN(z) = z·t + b`.
fn bn_affine(bn: &BatchNorm2d) -> (Tensor<1>, Tensor<1>) {
    let (mean, var) = bn.running_stats();
    let t = bn.weight.val() / var.add_scalar(bn.epsilon).sqrt();
    let bias = bn.bias.val() - mean * t.clone();
    (t, bias)
}

fn per_out_channel(t: Tensor<1>) -> Tensor<4> {
    let c = t.dims()[0] as i32;
    t.reshape([c, 1, 1, 1])
}

impl RepOptGhostModule {
    /// Folds a `Rep` module's two BNs (with their running statistics) into its cheap conv: with
    /// `(t_c, b_c)` the eval-mode affine map of `cheap_operation.1`, `(t_f, b_f)` that of
    /// `fusion_bn` and `I` the group-wise identity kernel,
    ///
    /// `W' = W ⊙ t_c + I ⊙ t_f`, `b' = b_c + b_f`,
    ///
    /// so `conv(x1; W') + b' = bn_c(conv(x1; W)) + fusion_bn(x1)` in eval mode. The primary
    /// branch is kept; the result is in `Deploy` mode.
    pub fn fuse_rep(self) -> Result<Self> {
        let wrong_mode = || ModelError::WrongMode {
            operation: format!("fusing ghost module `{}`", self.spec.path),
            expected: GhostMode::Rep.to_string(),
            found: self.mode.to_string(),
        };
        let (Some(Either::Right(bn_cheap)), Some(bn_fusion)) =
            (&self.cheap_operation.1, &self.fusion_bn)
        else {
            return Err(wrong_mode());
        };
        let weight = self.cheap_operation.0.weight.val().detach();
        let device = weight.device();
        let spec = &self.spec;
        let identity =
            groupwise_identity_kernel(spec.channels, spec.kernel_size, spec.groups, &device)?;
        let (t_cheap, b_cheap) = bn_affine(bn_cheap);
        let (t_fusion, b_fusion) = bn_affine(bn_fusion);
        let kernel = weight * per_out_channel(t_cheap) + identity * per_out_channel(t_fusion);
        let bias = b_cheap + b_fusion;
        let mut fused = RepOptGhostModule::new(self.spec.clone(), GhostMode::Deploy, &device);
        fused.cheap_operation.0.weight = Param::from_tensor(kernel.detach());
        fused.cheap_operation.0.bias = Some(Param::from_tensor(bias.detach()));
        fused.primary_conv = self.primary_conv;
        Ok(fused)
    }
}

impl RepOptGhostNet {
    /// The deployed RepGhost model: every ghost module of a `Rep` model folded by
    /// [`RepOptGhostModule::fuse_rep`] into one depthwise 3×3 conv with bias. Everything else is
    /// kept; the result is in `Deploy` mode and gives the same eval-mode output.
    pub fn fuse_rep(self) -> Result<Self> {
        if self.mode() != GhostMode::Rep {
            return Err(ModelError::WrongMode {
                operation: "RepGhost deploy fusion".into(),
                expected: GhostMode::Rep.to_string(),
                found: self.mode().to_string(),
            });
        }
        let mut fused = self.try_map_ghost_modules(RepOptGhostModule::fuse_rep)?;
        fused.config.mode = GhostMode::Deploy;
        Ok(fused)
    }
}
