//! Every BatchNorm of a model, reached in one walk: [`MapBatchNorms`].
//!
//! A layer's momentum is a setting, not a parameter (the module derive skips it), so Burn's
//! module mappers do not reach it; this walk does, for both architectures, in forward order.

use crate::block::{RepOptVggBlock, ScaleLayer};
use crate::ghostnet::{
    ConvBnAct, Either, RepOptGhostBottleneck, RepOptGhostModule, RepOptGhostNet,
};
use crate::model::RepOptVgg;
use crate::norm::BatchNorm2d;

/// A module whose [`BatchNorm2d`] layers can be replaced one by one.
pub trait MapBatchNorms: Sized {
    /// `self` with every BatchNorm `bn` replaced by `f(bn)`, in forward order.
    fn map_batch_norms(self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self;

    /// The momentum of every BatchNorm, in forward order.
    fn batch_norm_momenta(self) -> (Self, Vec<f64>) {
        let mut momenta = Vec::new();
        let module = self.map_batch_norms(&mut |bn| {
            momenta.push(bn.momentum);
            bn
        });
        (module, momenta)
    }

    /// `self` with every BatchNorm's momentum set to `momentum`.
    fn with_batch_norm_momentum(self, momentum: f64) -> Self {
        self.map_batch_norms(&mut |bn| BatchNorm2d { momentum, ..bn })
    }

    /// `self` with the BatchNorms' momenta set to `momenta`, in forward order (as
    /// [`batch_norm_momenta`](Self::batch_norm_momenta) gave them).
    fn with_batch_norm_momenta(self, momenta: &[f64]) -> Self {
        let mut given = momenta.iter().copied();
        self.map_batch_norms(&mut |bn| {
            let momentum = given.next().unwrap_or(bn.momentum);
            BatchNorm2d { momentum, ..bn }
        })
    }
}

impl MapBatchNorms for BatchNorm2d {
    fn map_batch_norms(self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        f(self)
    }
}

/// Holds no BatchNorm.
impl MapBatchNorms for ScaleLayer {
    fn map_batch_norms(self, _: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        self
    }
}

impl<T: MapBatchNorms> MapBatchNorms for Option<T> {
    fn map_batch_norms(self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        self.map(|module| module.map_batch_norms(f))
    }
}

impl<T: MapBatchNorms> MapBatchNorms for Vec<T> {
    fn map_batch_norms(self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        self.into_iter().map(|m| m.map_batch_norms(f)).collect()
    }
}

impl<L: MapBatchNorms, R: MapBatchNorms> MapBatchNorms for Either<L, R> {
    fn map_batch_norms(self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        match self {
            Either::Left(module) => Either::Left(module.map_batch_norms(f)),
            Either::Right(module) => Either::Right(module.map_batch_norms(f)),
        }
    }
}

impl MapBatchNorms for RepOptVggBlock {
    fn map_batch_norms(mut self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        self.bn = self.bn.map_batch_norms(f);
        self.bn_3x3 = self.bn_3x3.map_batch_norms(f);
        self.bn_1x1 = self.bn_1x1.map_batch_norms(f);
        self.bn_identity = self.bn_identity.map_batch_norms(f);
        self
    }
}

impl MapBatchNorms for RepOptVgg {
    fn map_batch_norms(mut self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        self.stage0 = self.stage0.map_batch_norms(f);
        self.stage1 = self.stage1.map_batch_norms(f);
        self.stage2 = self.stage2.map_batch_norms(f);
        self.stage3 = self.stage3.map_batch_norms(f);
        self.stage4 = self.stage4.map_batch_norms(f);
        self
    }
}

impl MapBatchNorms for RepOptGhostModule {
    fn map_batch_norms(mut self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        let (conv, bn) = self.primary_conv;
        self.primary_conv = (conv, bn.map_batch_norms(f));
        let (conv, follower) = self.cheap_operation;
        self.cheap_operation = (conv, follower.map_batch_norms(f));
        self.fusion_bn = self.fusion_bn.map_batch_norms(f);
        self.final_bn = self.final_bn.map_batch_norms(f);
        self
    }
}

impl MapBatchNorms for RepOptGhostBottleneck {
    fn map_batch_norms(mut self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        self.ghost1 = self.ghost1.map_batch_norms(f);
        self.bn_dw = self.bn_dw.map_batch_norms(f);
        self.ghost2 = self.ghost2.map_batch_norms(f);
        self.shortcut = self.shortcut.map(|(dw, bn_dw, pw, bn_pw)| {
            (dw, bn_dw.map_batch_norms(f), pw, bn_pw.map_batch_norms(f))
        });
        self
    }
}

impl MapBatchNorms for ConvBnAct {
    fn map_batch_norms(mut self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        self.bn1 = self.bn1.map_batch_norms(f);
        self
    }
}

impl MapBatchNorms for RepOptGhostNet {
    fn map_batch_norms(mut self, f: &mut dyn FnMut(BatchNorm2d) -> BatchNorm2d) -> Self {
        self.bn1 = self.bn1.map_batch_norms(f);
        self.blocks = self.blocks.map_batch_norms(f);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ghostnet::{GhostMode, RepOptGhostNetConfig};
    use crate::{BlockMode, RepOptVggConfig};
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::{Device, Tensor};

    /// The number of BatchNorms of `module`, counted by the walk.
    fn count(module: impl MapBatchNorms) -> usize {
        module.batch_norm_momenta().1.len()
    }

    /// Counts the `running_var` buffers of a module: one per BatchNorm.
    #[derive(Default)]
    struct RunningVars {
        path: Vec<String>,
        found: usize,
    }

    impl ModuleVisitor for RunningVars {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }

        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }

        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
            self.found += usize::from(self.path.last().is_some_and(|leaf| leaf == "running_var"));
        }
    }

    /// The walk reaches every BatchNorm: as many as the module has `running_var` buffers.
    fn reaches_every_batch_norm(module: impl MapBatchNorms + Module) {
        let mut buffers = RunningVars::default();
        module.visit(&mut buffers);
        assert!(buffers.found > 0);
        assert_eq!(count(module), buffers.found);
    }

    #[test]
    fn the_walk_reaches_every_batch_norm_of_both_architectures() {
        let device = Device::flex();
        for mode in [BlockMode::Target, BlockMode::RepVgg, BlockMode::Csla] {
            let config = RepOptVggConfig::preset("tiny").unwrap().with_mode(mode);
            reaches_every_batch_norm(config.init(&device));
        }
        for mode in [GhostMode::Target, GhostMode::Rep, GhostMode::Csla] {
            let config = RepOptGhostNetConfig::small().with_mode(mode);
            reaches_every_batch_norm(config.init(&device).unwrap());
        }
    }

    #[test]
    fn momenta_are_set_and_restored_in_order() {
        let model = RepOptVggConfig::preset("tiny")
            .unwrap()
            .with_mode(BlockMode::RepVgg)
            .init(&Device::flex());
        let (model, before) = model.batch_norm_momenta();
        assert!(before.iter().all(|m| *m == 0.1));
        let (model, set) = model.with_batch_norm_momentum(0.5).batch_norm_momenta();
        assert!(set.iter().all(|m| *m == 0.5));
        let distinct: Vec<f64> = (0..set.len()).map(|i| i as f64 / 100.0).collect();
        let (model, read) = model
            .with_batch_norm_momenta(&distinct)
            .batch_norm_momenta();
        assert_eq!(read, distinct);
        let (_, restored) = model.with_batch_norm_momenta(&before).batch_norm_momenta();
        assert_eq!(restored, before);
    }
}
