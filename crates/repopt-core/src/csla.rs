//! The closed-form rules of a CSLA block, independent of any architecture.
//!
//! A CSLA (Constant-Scale Linear Addition) block computes
//! `y = α ⊙ conv_k×k(x; W3) + β ⊙ conv_1×1(x; W1) [+ γ ⊙ x]` with per-output-channel scales α, β, γ
//! (the identity term only when `C_in == C_out` and stride 1). It is linear in its kernels, so it
//! equals a single `k×k` conv with the *equivalent kernel*
//!
//! ```text
//! W = α ⊙ W3 + β ⊙ pad(W1) [+ γ at W[c, c, k/2, k/2]]
//! ```
//!
//! and one SGD step on the block moves `W` exactly as an SGD step on the single conv whose
//! gradient is multiplied by the *Grad Mult*
//!
//! ```text
//! M[c, d, h, w]          = α_c^p
//! M[c, d, k/2, k/2]     += β_c^p
//! M[c, c, k/2, k/2]     += 1          (identity blocks; the identity scale's own update)
//! ```
//!
//! with `p = 2` for SGD. The official AdamW variant uses `p = 1` (see
//! [`RepAdamWConfig`](crate::RepAdamWConfig)). All arithmetic is done in `f32` on the host in the
//! order the official code uses, so results match it bit for bit.

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

/// Shape and scales of one CSLA block.
#[derive(Debug, Clone, Copy)]
pub struct CslaScales<'a> {
    /// α, scale of the `k×k` branch, one per output channel.
    pub conv: &'a [f32],
    /// β, scale of the 1×1 branch, one per output channel.
    pub conv_1x1: &'a [f32],
}

fn check_len(what: &str, found: usize, expected: usize) -> Result<()> {
    if found != expected {
        return Err(RepOptError::Shape {
            what: what.to_string(),
            expected: vec![expected],
            found: vec![found],
        });
    }
    Ok(())
}

/// The float types the rules compute in: `f32` (bit-exact with the official code) or `f64`.
pub trait CslaFloat:
    burn::tensor::Element
    + Copy
    + core::ops::Add<Output = Self>
    + core::ops::Mul<Output = Self>
    + core::ops::AddAssign
    + From<f32>
{
}

impl CslaFloat for f32 {}
impl CslaFloat for f64 {}

fn pow<E: CslaFloat>(value: f32, power: i32) -> E {
    let value = E::from(value);
    match power {
        1 => value,
        2 => value * value,
        p => (0..p - 1).fold(value, |acc, _| acc * value),
    }
}

/// The Grad Mult `[C_out, C_in, k, k]` of a CSLA block (see the module docs for the math), in
/// `f32`.
///
/// `identity` adds the `+1` on the diagonal centre; it needs `C_in == C_out`.
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
    let out_channels = scales.conv.len();
    check_len("1x1 scale (β)", scales.conv_1x1.len(), out_channels)?;
    check_identity(identity, in_channels, out_channels)?;
    let k = kernel_size;
    let (centre, p) = (k / 2, rule.power());
    let mut values = Vec::with_capacity(out_channels * in_channels * k * k);
    for c in 0..out_channels {
        let alpha: E = pow(scales.conv[c], p);
        let beta: E = pow(scales.conv_1x1[c], p);
        for d in 0..in_channels {
            for h in 0..k {
                for w in 0..k {
                    let mut m = alpha;
                    if h == centre && w == centre {
                        m += beta;
                        if identity && c == d {
                            m += E::from(1.0);
                        }
                    }
                    values.push(m);
                }
            }
        }
    }
    Ok(TensorData::new(values, [out_channels, in_channels, k, k]))
}

fn check_identity(identity: bool, in_channels: usize, out_channels: usize) -> Result<()> {
    if identity && in_channels != out_channels {
        return Err(RepOptError::Shape {
            what: "identity branch (needs C_in == C_out)".into(),
            expected: vec![out_channels],
            found: vec![in_channels],
        });
    }
    Ok(())
}

/// How the identity branch enters the equivalent kernel.
#[derive(Debug, Clone, Copy)]
pub enum IdentityInit<'a> {
    /// No identity branch.
    None,
    /// `+1` on the diagonal centre.
    Unit,
    /// `+γ_c` on the diagonal centre (the official default).
    Scaled(&'a [f32]),
}

/// The equivalent kernel `α ⊙ W3 + β ⊙ pad(W1) [+ identity]` of a CSLA block (the Rule of
/// Initialization). `w3` is `[C_out, C_in, k, k]`, `w1` is `[C_out, C_in, 1, 1]`.
pub fn equivalent_kernel(
    w3: &TensorData,
    w1: &TensorData,
    scales: CslaScales<'_>,
    identity: IdentityInit<'_>,
) -> Result<TensorData> {
    let dims = w3.shape().to_vec();
    let [out_channels, in_channels, k, k2] = dims[..] else {
        return Err(RepOptError::Shape {
            what: "k×k kernel".into(),
            expected: vec![0, 0, 3, 3],
            found: dims,
        });
    };
    if k != k2 || k % 2 == 0 {
        return Err(RepOptError::Shape {
            what: "k×k kernel (square, odd k)".into(),
            expected: vec![out_channels, in_channels, 3, 3],
            found: dims,
        });
    }
    let w1_dims = w1.shape().to_vec();
    if w1_dims != [out_channels, in_channels, 1, 1] {
        return Err(RepOptError::Shape {
            what: "1x1 kernel".into(),
            expected: vec![out_channels, in_channels, 1, 1],
            found: w1_dims,
        });
    }
    check_len("k×k scale (α)", scales.conv.len(), out_channels)?;
    check_len("1x1 scale (β)", scales.conv_1x1.len(), out_channels)?;
    let gamma = match identity {
        IdentityInit::None => None,
        IdentityInit::Unit => Some(None),
        IdentityInit::Scaled(gamma) => {
            check_len("identity scale (γ)", gamma.len(), out_channels)?;
            Some(Some(gamma))
        }
    };
    if gamma.is_some() {
        check_identity(true, in_channels, out_channels)?;
    }
    let dims = [out_channels, in_channels, k];
    if w3.dtype() == burn::tensor::DType::F64 {
        combine::<f64>(w3, w1, dims, scales, gamma)
    } else {
        combine::<f32>(w3, w1, dims, scales, gamma)
    }
}

/// `α ⊙ W3 + β ⊙ pad(W1) [+ γ]` in the float type `E`.
fn combine<E: CslaFloat>(
    w3: &TensorData,
    w1: &TensorData,
    [out_channels, in_channels, k]: [usize; 3],
    scales: CslaScales<'_>,
    gamma: Option<Option<&[f32]>>,
) -> Result<TensorData> {
    let values = |data: &TensorData, what: &str| {
        data.clone()
            .convert::<E>()
            .try_to_vec::<E>()
            .map_err(|e| shape_err(what, e))
    };
    let (w3, w1) = (values(w3, "k×k kernel")?, values(w1, "1x1 kernel")?);
    let centre = k / 2;
    let mut out = Vec::with_capacity(w3.len());
    for c in 0..out_channels {
        for d in 0..in_channels {
            for h in 0..k {
                for w in 0..k {
                    let i = ((c * in_channels + d) * k + h) * k + w;
                    let mut v = w3[i] * E::from(scales.conv[c]);
                    let padded = if h == centre && w == centre {
                        w1[c * in_channels + d]
                    } else {
                        E::from(0.0)
                    };
                    v += padded * E::from(scales.conv_1x1[c]);
                    if let Some(gamma) = gamma
                        && c == d
                        && h == centre
                        && w == centre
                    {
                        v += E::from(gamma.map_or(1.0, |g| g[c]));
                    }
                    out.push(v);
                }
            }
        }
    }
    Ok(TensorData::new(out, [out_channels, in_channels, k, k]))
}

fn shape_err(what: &str, e: impl core::fmt::Debug) -> RepOptError {
    RepOptError::InvalidConfig(format!("{what} is not float data: {e:?}"))
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
