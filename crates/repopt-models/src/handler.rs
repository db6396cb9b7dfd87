//! The RepOpt-VGG rules: re-initialisation and Grad Mults from hyper-search scales.

use std::collections::BTreeMap;

use burn::tensor::{Device, TensorData};
use repopt_core::csla::{CslaConv, CslaScales, IdentityInit};
use repopt_core::{CslaModel, GradMults, RepOptError, RepOptHandler, UpdateRule};

use crate::config::{BlockMode, RepOptVggConfig};
use crate::error::{ModelError, Result};
use crate::model::RepOptVgg;
use crate::scales::VggScales;

/// RepOpt-VGG's [`RepOptHandler`]: the scales of every block and how to use them.
///
/// * Rule of Initialization: every 3×3 kernel `W3` of a `Target` model becomes
///   `s ⊙ W3 + t ⊙ pad(W1) [+ γ or 1 on the diagonal centre]`, with `W1` a freshly drawn 1×1
///   kernel (PyTorch's default conv init), as the official handler does.
/// * Rule of Iteration: the Grad Mult of each `<block>.conv.weight` is
///   `s^p` everywhere, `+ t^p` at the centre, `+ 1` on the diagonal centre of identity blocks,
///   with `p` = 2 for SGD and 1 for AdamW.
#[derive(Debug, Clone)]
pub struct RepOptVggHandler {
    scales: VggScales,
    use_identity_scales_for_reinit: bool,
}

impl RepOptVggHandler {
    /// A handler for `scales`; identity blocks are re-initialised with their trained `γ` (the
    /// official default).
    pub fn new(scales: VggScales) -> Self {
        Self {
            scales,
            use_identity_scales_for_reinit: true,
        }
    }

    /// Re-initialise identity blocks with `γ` (true) or with 1 (false).
    pub fn with_identity_scales_for_reinit(mut self, use_them: bool) -> Self {
        self.use_identity_scales_for_reinit = use_them;
        self
    }

    /// The scales.
    pub fn scales(&self) -> &VggScales {
        &self.scales
    }

    fn check_target(&self, model: &RepOptVgg, operation: &str) -> Result<()> {
        if model.mode() != BlockMode::Target {
            return Err(ModelError::WrongMode {
                operation: operation.into(),
                expected: "target".into(),
                found: model.mode().to_string(),
            });
        }
        self.scales.validate_for(&model.config)
    }

    /// The CSLA structure these scales give the target model of `config`: per block, the 3×3
    /// kernel `<block>.conv.weight` with `α = s`, a 1×1 branch with `β = t` and, in identity
    /// blocks, the identity with `γ`. Both rules come from it.
    pub fn csla_model(&self, config: &RepOptVggConfig) -> Result<CslaModel> {
        self.scales.validate_for(config)?;
        let convs = self
            .scales
            .blocks
            .iter()
            .map(|block| {
                let scales = CslaScales {
                    conv: &block.conv,
                    conv_1x1: &block.conv_1x1,
                };
                let spec = &block.spec;
                scales.conv(
                    &spec.kernel_path(),
                    spec.in_channels,
                    3,
                    block.identity.as_deref(),
                )
            })
            .collect();
        let identity = match self.use_identity_scales_for_reinit {
            true => IdentityInit::Scale,
            false => IdentityInit::Unit,
        };
        Ok(CslaModel::new(convs)?.with_identity_init(identity))
    }

    /// The Rule of Initialization with given 1×1 kernels (`<block>` → `[C_out, C_in, 1, 1]`)
    /// instead of freshly drawn ones; for reproducing a reference run.
    pub fn reinitialize_with_1x1(
        &self,
        model: RepOptVgg,
        kernels_1x1: &BTreeMap<String, TensorData>,
    ) -> Result<RepOptVgg> {
        self.check_target(&model, "re-initialisation")?;
        let structure = self.csla_model(&model.config)?;
        let mut given = |conv: &CslaConv, _branch: usize| {
            let block = conv.path.trim_end_matches(".conv.weight");
            kernels_1x1.get(block).cloned().ok_or_else(|| {
                RepOptError::InvalidConfig(format!("the given 1x1 kernels have none for `{block}`"))
            })
        };
        Ok(structure.reinitialize_with(model, &mut given)?)
    }

    /// The Rule of Initialization with freshly drawn 1×1 kernels (see the type docs).
    pub fn reinitialize_model(&self, model: RepOptVgg) -> Result<RepOptVgg> {
        self.check_target(&model, "re-initialisation")?;
        let device = model.linear.weight.device();
        Ok(self
            .csla_model(&model.config)?
            .reinitialize(model, &device)?)
    }

    /// The Rule of Iteration: Grad Mults for every 3×3 kernel of `model`, on `device`, in the
    /// model's float type (`f32` as the official code, `f64` for `f64` models).
    pub fn grad_mults_for(
        &self,
        model: &RepOptVgg,
        rule: UpdateRule,
        device: &Device,
    ) -> Result<GradMults> {
        self.check_target(model, "Grad Mults")?;
        Ok(self
            .csla_model(&model.config)?
            .grad_mults(model, rule, device)?)
    }
}

impl RepOptHandler<RepOptVgg> for RepOptVggHandler {
    type Error = ModelError;

    fn reinitialize(&self, model: RepOptVgg) -> Result<RepOptVgg> {
        self.reinitialize_model(model)
    }

    fn grad_mults(
        &self,
        model: &RepOptVgg,
        rule: UpdateRule,
        device: &Device,
    ) -> Result<GradMults> {
        self.grad_mults_for(model, rule, device)
    }
}
