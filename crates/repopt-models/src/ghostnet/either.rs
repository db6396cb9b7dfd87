//! A module that is one of two module types and adds no name to the paths below it.

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
};
use burn::tensor::Device;

/// One of two modules, **transparent** in module paths: `Either::Left(bn)` at `cheap_operation.1`
/// has its parameters at `cheap_operation.1.weight`, not `cheap_operation.1.Left.weight` as a
/// derived enum module would name them.
///
/// PyTorch's `nn.Sequential` holds modules of different types under consecutive indices
/// (`cheap_operation.1` is a `ScaleLayer` in one mode and a `BatchNorm2d` in another; `blocks.5.0`
/// is a `ConvBnAct` where `blocks.0.0` is a bottleneck); this type gives such slots one Rust type
/// while keeping the PyTorch names, so state dicts load by path.
#[derive(Debug, Clone)]
pub enum Either<L, R> {
    /// The first kind.
    Left(L),
    /// The second kind.
    Right(R),
}

impl<L, R> Either<L, R> {
    /// The module if it is the first kind.
    pub fn left(&self) -> Option<&L> {
        match self {
            Either::Left(module) => Some(module),
            Either::Right(_) => None,
        }
    }

    /// The module if it is the second kind.
    pub fn right(&self) -> Option<&R> {
        match self {
            Either::Left(_) => None,
            Either::Right(module) => Some(module),
        }
    }
}

/// Applies the same expression to whichever module `$value` holds; with `wrap`, puts the result
/// back into the same variant.
macro_rules! both {
    ($value:expr, $module:ident => wrap $body:expr) => {
        match $value {
            Either::Left($module) => Either::Left($body),
            Either::Right($module) => Either::Right($body),
        }
    };
    ($value:expr, $module:ident => $body:expr) => {
        match $value {
            Either::Left($module) => $body,
            Either::Right($module) => $body,
        }
    };
}

impl<L: Module, R: Module> Module for Either<L, R> {
    fn collect_devices(&self, devices: Devices) -> Devices {
        both!(self, m => m.collect_devices(devices))
    }

    fn fork(self, device: &Device) -> Self {
        both!(self, m => wrap m.fork(device))
    }

    fn to_device(self, device: &Device) -> Self {
        both!(self, m => wrap m.to_device(device))
    }

    fn train(self) -> Self {
        both!(self, m => wrap m.train())
    }

    fn valid(&self) -> Self {
        both!(self, m => wrap m.valid())
    }

    fn materialize(self) -> Self {
        both!(self, m => wrap m.materialize())
    }

    fn num_params(&self) -> usize {
        both!(self, m => m.num_params())
    }

    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        both!(self, m => m.visit(visitor))
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        both!(self, m => wrap m.map(mapper))
    }
}

impl<L: ModuleDisplay, R: ModuleDisplay> ModuleDisplayDefault for Either<L, R> {
    fn content(&self, content: Content) -> Option<Content> {
        both!(self, m => m.content(content))
    }

    fn num_params(&self) -> usize {
        both!(self, m => ModuleDisplayDefault::num_params(m))
    }
}

impl<L: ModuleDisplay, R: ModuleDisplay> ModuleDisplay for Either<L, R> {}
