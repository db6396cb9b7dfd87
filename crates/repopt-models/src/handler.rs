//! The RepOpt-VGG rules: re-initialisation and Grad Mults from hyper-search scales.

use std::collections::BTreeMap;

use burn::module::Param;
use burn::tensor::{DType, Device, Tensor, TensorData};
use repopt_core::csla::{self, CslaScales, IdentityInit};
use repopt_core::{GradMult, GradMults, RepOptHandler, UpdateRule};

use crate::block::{RepOptVggBlock, conv};
use crate::config::BlockMode;
use crate::error::{ModelError, Result};
use crate::model::RepOptVgg;
use crate::scales::{BlockScales, VggScales};

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

    fn block_scales(&self, name: &str) -> &BlockScales {
        self.scales
            .block(name)
            .expect("scales were validated against the model")
    }

    /// The Rule of Initialization with given 1×1 kernels (`<block>` → `[C_out, C_in, 1, 1]`)
    /// instead of freshly drawn ones; for reproducing a reference run.
    pub fn reinitialize_with_1x1(
        &self,
        model: RepOptVgg,
        kernels_1x1: &BTreeMap<String, TensorData>,
    ) -> Result<RepOptVgg> {
        self.check_target(&model, "re-initialisation")?;
        model.try_map_blocks(|block| {
            let w1 = kernels_1x1.get(&block.spec.name).cloned().ok_or_else(|| {
                ModelError::MissingBlock {
                    source_name: "the given 1x1 kernels".into(),
                    block: block.spec.name.clone(),
                }
            })?;
            self.reinit_block(block, &w1)
        })
    }

    fn reinit_block(&self, mut block: RepOptVggBlock, w1: &TensorData) -> Result<RepOptVggBlock> {
        let scales = self.block_scales(&block.spec.name);
        let identity = match (&scales.identity, self.use_identity_scales_for_reinit) {
            (None, _) => IdentityInit::None,
            (Some(gamma), true) => IdentityInit::Scaled(gamma),
            (Some(_), false) => IdentityInit::Unit,
        };
        let conv = block.conv.as_mut().expect("target block has conv");
        let w3 = conv.weight.val().into_data();
        let kernel = csla::equivalent_kernel(
            &w3,
            w1,
            CslaScales {
                conv: &scales.conv,
                conv_1x1: &scales.conv_1x1,
            },
            identity,
        )
        .map_err(|e| in_block(&block.spec.name, e))?;
        let device = conv.weight.device();
        let id = conv.weight.id;
        conv.weight = Param::initialized(id, Tensor::from_data(kernel, &device).require_grad());
        Ok(block)
    }
}

fn in_block(block: &str, error: repopt_core::RepOptError) -> ModelError {
    match error {
        repopt_core::RepOptError::Shape {
            what,
            expected,
            found,
        } => ModelError::BlockShape {
            block: block.into(),
            what,
            expected,
            found,
        },
        other => other.into(),
    }
}

impl RepOptHandler<RepOptVgg> for RepOptVggHandler {
    fn reinitialize(&self, model: RepOptVgg) -> repopt_core::Result<RepOptVgg> {
        self.reinitialize_model(model).map_err(into_core)
    }

    fn grad_mults(
        &self,
        model: &RepOptVgg,
        rule: UpdateRule,
        device: &Device,
    ) -> repopt_core::Result<GradMults> {
        self.grad_mults_for(model, rule, device).map_err(into_core)
    }
}

fn into_core(error: ModelError) -> repopt_core::RepOptError {
    match error {
        ModelError::Core(e) => e,
        other => repopt_core::RepOptError::InvalidConfig(other.to_string()),
    }
}

impl RepOptVggHandler {
    /// The Rule of Initialization with freshly drawn 1×1 kernels (see the type docs).
    pub fn reinitialize_model(&self, model: RepOptVgg) -> Result<RepOptVgg> {
        self.check_target(&model, "re-initialisation")?;
        model.try_map_blocks(|block| {
            let device = block.conv.as_ref().expect("target block").weight.device();
            let w1 = conv(&block.spec, 1, false, &device)
                .weight
                .val()
                .into_data();
            self.reinit_block(block, &w1)
        })
    }

    /// The Rule of Iteration: Grad Mults for every 3×3 kernel of `model`, on `device`.
    pub fn grad_mults_for(
        &self,
        model: &RepOptVgg,
        rule: UpdateRule,
        device: &Device,
    ) -> Result<GradMults> {
        self.check_target(model, "Grad Mults")?;
        let mut mults = GradMults::new();
        for block in model.blocks() {
            let spec = &block.spec;
            let scales = self.block_scales(&spec.name);
            let scales = CslaScales {
                conv: &scales.conv,
                conv_1x1: &scales.conv_1x1,
            };
            let (cin, identity) = (spec.in_channels, spec.has_identity());
            // Mults in the model's float type: f32 as the official code, f64 for f64 models.
            let dtype = block
                .conv
                .as_ref()
                .expect("target block")
                .weight
                .val()
                .dtype();
            let mult = if dtype == DType::F64 {
                csla::grad_mult_as::<f64>(scales, cin, 3, identity, rule)
            } else {
                csla::grad_mult(scales, cin, 3, identity, rule)
            }
            .map_err(|e| in_block(&spec.name, e))?;
            mults.insert(spec.kernel_path(), GradMult::from_data(mult, device))?;
        }
        Ok(mults)
    }
}
