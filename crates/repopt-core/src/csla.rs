//! The closed-form rules of a CSLA structure, independent of any architecture.
//!
//! A [`CslaConv`] describes one conv of a plain model that stands for a CSLA (Constant-Scale
//! Linear Addition) block: with a `k×k` kernel `W` of shape `[C_out, C_in/g, k, k]` (`g` groups)
//! and per-output-channel constant scales, the block computes
//!
//! ```text
//! y = α ⊙ conv_k×k(x; W) + Σ_b β_b ⊙ conv_kb×kb(x; W_b) [+ γ ⊙ x]
//! ```
//!
//! where each branch `b` is a centred conv of odd size `k_b ≤ k` with the same groups and stride,
//! and the identity (only when `C_in == C_out` and stride 1) passes channel `c` to channel `c`.
//! The block is linear in its kernels, so it equals one `k×k` conv with the *equivalent kernel*
//! (the Rule of Initialization)
//!
//! ```text
//! W_eq = α ⊙ W + Σ_b β_b ⊙ pad_k(W_b) [+ γ ⊙ I_g]
//! ```
//!
//! with `I_g` the group-wise identity kernel: `1` at `[c, c mod (C_in/g), k/2, k/2]` (output
//! channel `c` lies in group `c div (C_in/g)` and reads input channel `c` there). One SGD step on
//! the block moves `W_eq` exactly as an SGD step on the single conv whose gradient is multiplied
//! by the *Grad Mult* (the Rule of Iteration)
//!
//! ```text
//! M = α^p  +  Σ_b β_b^p on b's centred k_b×k_b window  [+ I_g]
//! ```
//!
//! with `p = 2` for SGD; the official AdamW variant uses `p = 1` (see
//! [`RepAdamWConfig`](crate::RepAdamWConfig)). The identity adds 1 whatever `γ`: `γ` itself is
//! the trained parameter there. RepOpt-VGG is one `1×1` branch on a dense `3×3` kernel;
//! RepOpt-GhostNet is no branch and an identity on a depthwise `3×3` kernel.
//!
//! All arithmetic is done on the host in the order the official code uses (`α·W`, then each
//! branch, then `γ`; `α^p`, then each `β^p`, then `1`), in `f32` for `f32` kernels, so results
//! match it bit for bit, and in `f64` for `f64` kernels.

use burn::tensor::TensorData;

use crate::error::{RepOptError, Result};

/// The update rule a Grad Mult is made for; it fixes the power `p` of the scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UpdateRule {
    /// SGD (with or without momentum and L2 decay): `p = 2`.
    Sgd,
    /// The official RepOptimizer AdamW: `p = 1`.
    AdamW,
}

impl UpdateRule {
    /// The power `p` applied to the scales.
    pub fn power(self) -> i32 {
        match self {
            UpdateRule::Sgd => 2,
            UpdateRule::AdamW => 1,
        }
    }
}

/// A centred branch of a [`CslaConv`]: a `k_b×k_b` conv (odd `k_b`) and its scale `β_b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// `k_b`.
    pub kernel_size: usize,
    /// `β_b`, one per output channel.
    pub scale: Vec<f64>,
}

/// One conv of a plain model and the CSLA block it stands for (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct CslaConv {
    /// Module path of the kernel in the plain model (`stage1.0.conv.weight`).
    pub path: String,
    /// Input channels `C_in` of the conv (all groups).
    pub in_channels: usize,
    /// Groups `g` (`C_out` for a depthwise conv).
    pub groups: usize,
    /// Kernel size `k` (odd).
    pub kernel_size: usize,
    /// `α`, one per output channel; its length is `C_out`.
    pub scale: Vec<f64>,
    /// The centred branches.
    pub branches: Vec<Branch>,
    /// `γ` of the identity branch (one per output channel), when the block has one.
    pub identity: Option<Vec<f64>>,
}

/// What the identity branch adds to an equivalent kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityInit {
    /// `γ_c` (the official default).
    Scale,
    /// `1`, whatever `γ`.
    Unit,
}

/// The float types the rules compute in: `f32` (bit-exact with the official code) or `f64`.
pub trait CslaFloat:
    burn::tensor::Element
    + Copy
    + core::ops::Add<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::AddAssign
{
    /// `v` rounded to this type.
    fn of(v: f64) -> Self;
}

impl CslaFloat for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
}
impl CslaFloat for f64 {
    fn of(v: f64) -> Self {
        v
    }
}

fn pow<E: CslaFloat>(value: f64, power: i32) -> E {
    let value = E::of(value);
    (1..power).fold(value, |acc, _| acc * value)
}

fn shape_error(what: String, expected: Vec<usize>, found: Vec<usize>) -> RepOptError {
    RepOptError::Shape {
        what,
        expected,
        found,
    }
}

/// The group-wise identity kernel `I_g` (`[C, C/g, k, k]`, 1 at `[c, c mod (C/g), k/2, k/2]`).
pub fn identity_kernel(channels: usize, groups: usize, kernel_size: usize) -> TensorData {
    let per_group = channels / groups.max(1);
    let k = kernel_size;
    let mut values = vec![0f32; channels * per_group * k * k];
    for c in 0..channels {
        values[((c * per_group + c % per_group) * k + k / 2) * k + k / 2] = 1.0;
    }
    TensorData::new(values, [channels, per_group, k, k])
}

impl CslaConv {
    /// `C_out`.
    pub fn out_channels(&self) -> usize {
        self.scale.len()
    }

    /// The kernel's shape `[C_out, C_in/g, k, k]`.
    pub fn shape(&self) -> [usize; 4] {
        let k = self.kernel_size;
        [
            self.out_channels(),
            self.in_channels / self.groups.max(1),
            k,
            k,
        ]
    }

    /// Checks sizes, groups, branch sizes and scale lengths.
    pub fn validate(&self) -> Result<()> {
        let (out, k, g) = (self.out_channels(), self.kernel_size, self.groups);
        let at = |what: &str| format!("{what} of `{}`", self.path);
        let divides = |n: usize| g > 0 && n.is_multiple_of(g);
        if k.is_multiple_of(2) || !divides(self.in_channels) || !divides(out) || out == 0 {
            return Err(shape_error(
                at("kernel (odd k, groups dividing C_in and C_out)"),
                vec![out, self.in_channels / g.max(1), k, k],
                vec![out, self.in_channels, g, k],
            ));
        }
        for branch in &self.branches {
            if branch.kernel_size.is_multiple_of(2) || branch.kernel_size > k {
                return Err(shape_error(
                    at("branch kernel (odd, at most k)"),
                    vec![k],
                    vec![branch.kernel_size],
                ));
            }
            if branch.scale.len() != out {
                return Err(shape_error(
                    at("branch scale (β)"),
                    vec![out],
                    vec![branch.scale.len()],
                ));
            }
        }
        if let Some(gamma) = &self.identity {
            if self.in_channels != out {
                return Err(shape_error(
                    at("identity branch (needs C_in == C_out)"),
                    vec![out],
                    vec![self.in_channels],
                ));
            }
            if gamma.len() != out {
                return Err(shape_error(
                    at("identity scale (γ)"),
                    vec![out],
                    vec![gamma.len()],
                ));
            }
        }
        Ok(())
    }

    /// Whether `(h, w)` lies in the centred `size×size` window of the `k×k` kernel.
    fn in_window(&self, size: usize, h: usize, w: usize) -> bool {
        let lo = (self.kernel_size - size) / 2;
        (lo..lo + size).contains(&h) && (lo..lo + size).contains(&w)
    }

    /// Whether `[c, d, h, w]` is a position of the identity kernel.
    fn on_identity(&self, c: usize, d: usize, h: usize, w: usize) -> bool {
        let centre = self.kernel_size / 2;
        let per_group = self.in_channels / self.groups;
        self.identity.is_some() && d == c % per_group && h == centre && w == centre
    }

    /// The Grad Mult for `rule`, in `f32` (see the [module docs](self)).
    pub fn grad_mult(&self, rule: UpdateRule) -> Result<TensorData> {
        self.grad_mult_as::<f32>(rule)
    }

    /// [`grad_mult`](Self::grad_mult) computed in the float type `E`.
    pub fn grad_mult_as<E: CslaFloat>(&self, rule: UpdateRule) -> Result<TensorData> {
        self.validate()?;
        let [out, per_group, k, _] = self.shape();
        let p = rule.power();
        let mut values = Vec::with_capacity(out * per_group * k * k);
        for c in 0..out {
            let alpha: E = pow(self.scale[c], p);
            let betas: Vec<E> = self.branches.iter().map(|b| pow(b.scale[c], p)).collect();
            for d in 0..per_group {
                for h in 0..k {
                    for w in 0..k {
                        let mut m = alpha;
                        for (branch, &beta) in self.branches.iter().zip(&betas) {
                            if self.in_window(branch.kernel_size, h, w) {
                                m += beta;
                            }
                        }
                        if self.on_identity(c, d, h, w) {
                            m += E::of(1.0);
                        }
                        values.push(m);
                    }
                }
            }
        }
        Ok(TensorData::new(values, self.shape()))
    }

    /// The equivalent kernel `α ⊙ W + Σ_b β_b ⊙ pad_k(W_b) [+ γ ⊙ I_g or I_g]` (the Rule of
    /// Initialization), in `W`'s float type (`f64` for `f64` kernels, else `f32`). `branches`
    /// holds one kernel `[C_out, C_in/g, k_b, k_b]` per branch, in order.
    pub fn equivalent_kernel(
        &self,
        kernel: &TensorData,
        branches: &[TensorData],
        identity: IdentityInit,
    ) -> Result<TensorData> {
        self.validate()?;
        self.check_kernels(kernel, branches)?;
        if kernel.dtype() == burn::tensor::DType::F64 {
            self.combine::<f64>(kernel, branches, identity)
        } else {
            self.combine::<f32>(kernel, branches, identity)
        }
    }

    fn check_kernels(&self, kernel: &TensorData, branches: &[TensorData]) -> Result<()> {
        let [out, per_group, k, _] = self.shape();
        if kernel.shape().to_vec() != [out, per_group, k, k] {
            return Err(shape_error(
                format!("kernel `{}`", self.path),
                self.shape().to_vec(),
                kernel.shape().to_vec(),
            ));
        }
        if branches.len() != self.branches.len() {
            return Err(shape_error(
                format!("branch kernels of `{}`", self.path),
                vec![self.branches.len()],
                vec![branches.len()],
            ));
        }
        for (b, data) in self.branches.iter().zip(branches) {
            let kb = b.kernel_size;
            if data.shape().to_vec() != [out, per_group, kb, kb] {
                return Err(shape_error(
                    format!("{kb}x{kb} branch kernel of `{}`", self.path),
                    vec![out, per_group, kb, kb],
                    data.shape().to_vec(),
                ));
            }
        }
        Ok(())
    }

    fn combine<E: CslaFloat>(
        &self,
        kernel: &TensorData,
        branches: &[TensorData],
        identity: IdentityInit,
    ) -> Result<TensorData> {
        let values = |data: &TensorData| {
            data.clone().convert::<E>().try_to_vec::<E>().map_err(|e| {
                RepOptError::InvalidConfig(format!("{}: not float data: {e:?}", self.path))
            })
        };
        let w = values(kernel)?;
        let wb = branches.iter().map(values).collect::<Result<Vec<_>>>()?;
        let [out, per_group, k, _] = self.shape();
        let mut result = Vec::with_capacity(w.len());
        for c in 0..out {
            for d in 0..per_group {
                for h in 0..k {
                    for x in 0..k {
                        let i = ((c * per_group + d) * k + h) * k + x;
                        let mut v = w[i] * E::of(self.scale[c]);
                        for (branch, kernel) in self.branches.iter().zip(&wb) {
                            let kb = branch.kernel_size;
                            let lo = (k - kb) / 2;
                            let value = match self.in_window(kb, h, x) {
                                true => kernel[((c * per_group + d) * kb + h - lo) * kb + x - lo],
                                false => E::of(0.0),
                            };
                            v += value * E::of(branch.scale[c]);
                        }
                        if self.on_identity(c, d, h, x) {
                            let gamma = self.identity.as_ref().map_or(1.0, |g| g[c]);
                            v += E::of(match identity {
                                IdentityInit::Scale => gamma,
                                IdentityInit::Unit => 1.0,
                            });
                        }
                        result.push(v);
                    }
                }
            }
        }
        Ok(TensorData::new(result, self.shape()))
    }
}

/// The scales of a RepOpt-VGG-style block: a dense `k×k` conv and a `1×1` branch.
#[derive(Debug, Clone, Copy)]
pub struct CslaScales<'a> {
    /// α, scale of the `k×k` branch, one per output channel.
    pub conv: &'a [f32],
    /// β, scale of the 1×1 branch, one per output channel.
    pub conv_1x1: &'a [f32],
}

impl CslaScales<'_> {
    /// The [`CslaConv`] of a dense `kernel_size` conv with these scales, a `1×1` branch and,
    /// when given, an identity with `γ`.
    pub fn conv(
        &self,
        path: &str,
        in_channels: usize,
        kernel_size: usize,
        identity: Option<&[f32]>,
    ) -> CslaConv {
        let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        CslaConv {
            path: path.into(),
            in_channels,
            groups: 1,
            kernel_size,
            scale: wide(self.conv),
            branches: vec![Branch {
                kernel_size: 1,
                scale: wide(self.conv_1x1),
            }],
            identity: identity.map(wide),
        }
    }
}

/// The Grad Mult `[C_out, C_in, k, k]` of a RepOpt-VGG-style block ([`CslaScales::conv`]), in
/// `f32`; `identity` adds the `+1` on the diagonal centre (it needs `C_in == C_out`).
pub fn grad_mult(
    scales: CslaScales<'_>,
    in_channels: usize,
    kernel_size: usize,
    identity: bool,
    rule: UpdateRule,
) -> Result<TensorData> {
    grad_mult_as::<f32>(scales, in_channels, kernel_size, identity, rule)
}

/// [`grad_mult`] computed in the float type `E`.
pub fn grad_mult_as<E: CslaFloat>(
    scales: CslaScales<'_>,
    in_channels: usize,
    kernel_size: usize,
    identity: bool,
    rule: UpdateRule,
) -> Result<TensorData> {
    let ones = vec![1.0f32; scales.conv.len()];
    let identity = identity.then_some(ones.as_slice());
    scales
        .conv("block", in_channels, kernel_size, identity)
        .grad_mult_as::<E>(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mult_has_alpha_beta_and_identity_terms() {
        let scales = CslaScales {
            conv: &[2.0, -1.0],
            conv_1x1: &[3.0, 0.5],
        };
        let m = grad_mult(scales, 2, 3, true, UpdateRule::Sgd).unwrap();
        let m = m.try_to_vec::<f32>().unwrap();
        let at = |c: usize, d: usize, h: usize, w: usize| m[((c * 2 + d) * 3 + h) * 3 + w];
        assert_eq!(at(0, 1, 0, 0), 4.0);
        assert_eq!(at(0, 1, 1, 1), 13.0);
        assert_eq!(at(0, 0, 1, 1), 14.0);
        assert_eq!(at(1, 1, 1, 1), 1.0 + 0.25 + 1.0);
        let m = grad_mult(scales, 2, 3, false, UpdateRule::AdamW).unwrap();
        assert_eq!(m.try_to_vec::<f32>().unwrap()[9 * 2 + 4], -0.5);
    }

    #[test]
    fn identity_needs_square_block() {
        let scales = CslaScales {
            conv: &[1.0, 1.0],
            conv_1x1: &[1.0, 1.0],
        };
        let err = grad_mult(scales, 3, 3, true, UpdateRule::Sgd).unwrap_err();
        assert!(err.to_string().contains("identity"), "{err}");
        let err = grad_mult(
            CslaScales {
                conv: &[1.0, 1.0],
                conv_1x1: &[1.0],
            },
            2,
            3,
            false,
            UpdateRule::Sgd,
        )
        .unwrap_err();
        assert!(err.to_string().contains("β"), "{err}");
    }
}
