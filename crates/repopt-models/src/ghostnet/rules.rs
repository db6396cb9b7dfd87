//! The RepOptimizer rules of a RepOpt-GhostNet from its hyper-search scales `(φ, ψ)`.
//!
//! A ghost module `M` with `C` channels, cheap kernel `W ∈ ℝ^{C×1×3×3}` (depthwise), cheap-branch
//! scale `ψ` and identity scale `φ` computes, in `HyperSearch`/`Csla` mode,
//!
//! ```text
//! y = final_bn(ψ ⊙ dwconv(x1; W) + φ ⊙ x1) = final_bn(dwconv(x1; W_eq))
//! W_eq = ψ ⊙ W + φ ⊙ I          (I: the group-wise identity kernel, 1 at [c, 0, 1, 1])
//! ```
//!
//! so the `Target` model's cheap kernel `M.cheap_operation.0.weight` is trained with
//!
//! * Rule of Initialization: `W ← ψ ⊙ W + φ ⊙ I` (or `+ 1 ⊙ I`, the official
//!   `use_identity_scales_for_reinit=False`);
//! * Rule of Iteration (Grad Mult): `M = ψ^p` everywhere, `+ 1` at the centre of every channel
//!   (`p` = 2 for SGD, 1 for AdamW). The identity's `+1` does not depend on `φ`.
//!
//! Both come from the generic [`CslaModel`]: one [`CslaConv`] per ghost module with
//! `in_channels = groups = C`, `kernel_size = 3`, `scale = ψ`, no branch and `identity = φ`.

use repopt_core::CslaModel;
use repopt_core::csla::{CslaConv, IdentityInit};

use super::config::RepOptGhostNetConfig;
use super::model::RepOptGhostNet;
use super::scales::GhostScales;
use super::spec::GhostModuleSpec;
use crate::error::{ModelError, Result};

/// The hyper-search scales `(φ, ψ)` of every ghost module of a RepOpt-GhostNet, in the
/// official handler's order, with where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct GhostNetScales {
    /// Per ghost module: its path (`blocks.i.j.ghostK`), `φ` (`fusion`) and `ψ` (`cheap`).
    pub modules: Vec<GhostScales>,
    /// A human-readable origin (a file path, `constant 1`, …), used in error messages.
    pub source: String,
}

impl GhostNetScales {
    /// The scales of a `HyperSearch` or `Csla` model (see [`RepOptGhostNet::scales`]).
    pub fn from_model(model: &RepOptGhostNet) -> Result<Self> {
        Ok(Self {
            modules: model.scales()?,
            source: format!("extracted from the {} model", model.mode()),
        })
    }

    /// `φ = ψ = value` for every ghost module of `config` (ablations, tests). With `value = 1`
    /// the cheap kernel's Grad Mult is 1 off-centre and 2 at the centre.
    pub fn constant(config: &RepOptGhostNetConfig, value: f32) -> Result<Self> {
        let modules = config
            .ghost_modules()?
            .into_iter()
            .map(|spec| GhostScales {
                module: spec.path,
                fusion: vec![value; spec.channels],
                cheap: vec![value; spec.channels],
            })
            .collect();
        Ok(Self {
            modules,
            source: format!("constant {value}"),
        })
    }

    /// The scales of ghost module `path` (`blocks.i.j.ghostK`).
    pub fn module(&self, path: &str) -> Option<&GhostScales> {
        self.modules.iter().find(|m| m.module == path)
    }

    /// Strict check against an architecture: the same ghost modules (none missing, none extra,
    /// no duplicate), each with `C` finite values of `φ` and of `ψ`. Errors name the module.
    pub fn validate_for(&self, config: &RepOptGhostNetConfig) -> Result<()> {
        let specs = config.ghost_modules()?;
        for spec in &specs {
            let mut found = self.modules.iter().filter(|m| m.module == spec.path);
            let scales = found.next().ok_or_else(|| ModelError::MissingBlock {
                source_name: self.source.clone(),
                block: spec.path.clone(),
            })?;
            if found.next().is_some() {
                return Err(ModelError::Tensor {
                    name: spec.path.clone(),
                    message: format!("the scales from {} list it twice", self.source),
                });
            }
            check_module(spec, scales)?;
        }
        if let Some(extra) = self
            .modules
            .iter()
            .find(|m| !specs.iter().any(|s| s.path == m.module))
        {
            return Err(ModelError::ExtraBlock {
                source_name: self.source.clone(),
                block: extra.module.clone(),
            });
        }
        Ok(())
    }

    /// The CSLA structure of the `Target` model of `config`, keyed by cheap-kernel path
    /// (`M.cheap_operation.0.weight`): `scale = ψ`, `identity = φ`, depthwise 3×3. Re-initialised
    /// kernels get `φ ⊙ I` (the official default). Validated first.
    pub fn csla_model(&self, config: &RepOptGhostNetConfig) -> Result<CslaModel> {
        self.csla_model_with(config, true)
    }

    /// [`csla_model`](Self::csla_model), re-initialising identities with `φ` (true) or with 1
    /// (false: the official `use_identity_scales_for_reinit=False`). The Grad Mults are the same.
    pub fn csla_model_with(
        &self,
        config: &RepOptGhostNetConfig,
        use_identity_scales_for_reinit: bool,
    ) -> Result<CslaModel> {
        self.validate_for(config)?;
        let convs = config
            .ghost_modules()?
            .iter()
            .map(|spec| {
                let scales = self
                    .module(&spec.path)
                    .ok_or_else(|| ModelError::MissingBlock {
                        source_name: self.source.clone(),
                        block: spec.path.clone(),
                    })?;
                Ok(ghost_conv(spec, scales))
            })
            .collect::<Result<Vec<_>>>()?;
        let identity = match use_identity_scales_for_reinit {
            true => IdentityInit::Scale,
            false => IdentityInit::Unit,
        };
        Ok(CslaModel::new(convs)?.with_identity_init(identity))
    }
}

/// One ghost module as a [`CslaConv`]: `W_eq = ψ ⊙ W + φ ⊙ I`, depthwise 3×3.
pub fn ghost_conv(spec: &GhostModuleSpec, scales: &GhostScales) -> CslaConv {
    let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    CslaConv {
        path: spec.kernel_path.clone(),
        in_channels: spec.channels,
        groups: spec.groups,
        kernel_size: spec.kernel_size,
        scale: wide(&scales.cheap),
        branches: Vec::new(),
        identity: Some(wide(&scales.fusion)),
    }
}

/// `φ` and `ψ` of one module: `C` finite values each.
fn check_module(spec: &GhostModuleSpec, scales: &GhostScales) -> Result<()> {
    let c = spec.channels;
    for (what, values) in [
        ("fusion_scale.weight (φ)", &scales.fusion),
        ("cheap_operation.1.weight (ψ)", &scales.cheap),
    ] {
        if values.len() != c {
            return Err(ModelError::BlockShape {
                block: spec.path.clone(),
                what: what.into(),
                expected: vec![c],
                found: vec![values.len()],
            });
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Tensor {
                name: format!("{}.{what}", spec.path),
                message: "contains NaN or infinity".into(),
            });
        }
    }
    Ok(())
}
