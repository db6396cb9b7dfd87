//! A whole model's CSLA structure: its [`CslaConv`]s, and the two rules applied to any Burn
//! module by parameter path.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};

use crate::csla::{CslaConv, IdentityInit, UpdateRule};
use crate::error::{RepOptError, Result};
use crate::grad_mult::{GradMult, GradMults, param_infos};
use crate::handler::RepOptHandler;

/// The CSLA structure of a model: one [`CslaConv`] per re-parameterised kernel, keyed by the
/// kernel's module path. It is the [`RepOptHandler`] of any Burn module that has those kernels.
///
/// ```
/// use repopt_core::csla::{Branch, CslaConv};
/// use repopt_core::CslaModel;
/// // A 3×3 conv with a 1×1 branch and an identity, 4 channels, constant scales.
/// let conv = CslaConv {
///     path: "block.conv.weight".into(),
///     in_channels: 4,
///     groups: 1,
///     kernel_size: 3,
///     scale: vec![0.5; 4],
///     branches: vec![Branch { kernel_size: 1, scale: vec![0.25; 4] }],
///     identity: Some(vec![1.0; 4]),
/// };
/// let structure = CslaModel::new(vec![conv]).unwrap();
/// assert_eq!(structure.convs().len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CslaModel {
    convs: Vec<CslaConv>,
    identity_init: IdentityInit,
}

/// Draws the kernel of branch `index` of `conv` for the Rule of Initialization.
pub type BranchKernels<'a> = dyn FnMut(&CslaConv, usize) -> Result<TensorData> + 'a;

impl CslaModel {
    /// The structure of `convs` (each validated; paths must be distinct). Identity branches
    /// enter re-initialised kernels with their `γ` ([`IdentityInit::Scale`]).
    pub fn new(convs: Vec<CslaConv>) -> Result<Self> {
        let mut seen = BTreeSet::new();
        for conv in &convs {
            conv.validate()?;
            if !seen.insert(conv.path.clone()) {
                return Err(RepOptError::DuplicateMult {
                    path: conv.path.clone(),
                });
            }
        }
        Ok(Self {
            convs,
            identity_init: IdentityInit::Scale,
        })
    }

    /// Re-initialise identity branches with `γ` or with 1.
    pub fn with_identity_init(mut self, identity_init: IdentityInit) -> Self {
        self.identity_init = identity_init;
        self
    }

    /// The convs, in the order given.
    pub fn convs(&self) -> &[CslaConv] {
        &self.convs
    }

    /// The Grad Mults for `rule` on `device`, in each kernel's float type in `module`
    /// (checked against it: every path a parameter of that shape).
    pub fn grad_mults<M: Module>(
        &self,
        module: &M,
        rule: UpdateRule,
        device: &Device,
    ) -> Result<GradMults> {
        let dtypes = float_dtypes(module);
        let mut mults = GradMults::new();
        for conv in &self.convs {
            let data = match dtypes.get(&conv.path) {
                Some(DType::F64) => conv.grad_mult_as::<f64>(rule)?,
                _ => conv.grad_mult(rule)?,
            };
            mults.insert(conv.path.clone(), GradMult::from_data(data, device))?;
        }
        mults.validate(module)?;
        Ok(mults)
    }

    /// The Rule of Initialization on `module`: every kernel of a conv becomes its equivalent
    /// kernel, with branch kernels from `branches`. Fails, leaving nothing half-done to the
    /// caller, when a path is missing or a shape differs.
    pub fn reinitialize_with<M: Module>(
        &self,
        module: M,
        branches: &mut BranchKernels<'_>,
    ) -> Result<M> {
        let infos = param_infos(&module);
        let mut kernels = BTreeMap::new();
        for conv in &self.convs {
            let info = infos.iter().find(|p| p.path == conv.path).ok_or_else(|| {
                RepOptError::UnknownParam {
                    path: conv.path.clone(),
                    known: known_paths(&infos),
                }
            })?;
            if info.shape != conv.shape() {
                return Err(RepOptError::ShapeMismatch {
                    path: conv.path.clone(),
                    expected: info.shape.clone(),
                    found: conv.shape().to_vec(),
                });
            }
            let drawn = (0..conv.branches.len())
                .map(|b| branches(conv, b))
                .collect::<Result<Vec<_>>>()?;
            kernels.insert(conv.path.clone(), (conv, drawn));
        }
        let mut mapper = Reinit {
            path: Vec::new(),
            kernels,
            identity_init: self.identity_init,
            error: None,
        };
        let module = module.map(&mut mapper);
        match mapper.error {
            Some(error) => Err(error),
            None => Ok(module),
        }
    }

    /// [`reinitialize_with`](Self::reinitialize_with) drawing each branch kernel as PyTorch's
    /// default conv initialisation does: uniform on `±1/√fan_in`, `fan_in = (C_in/g)·k_b²`, on
    /// `device`.
    pub fn reinitialize<M: Module>(&self, module: M, device: &Device) -> Result<M> {
        let mut draw = |conv: &CslaConv, b: usize| {
            let [out, per_group, _, _] = conv.shape();
            let kb = conv.branches[b].kernel_size;
            let bound = 1.0 / ((per_group * kb * kb) as f64).sqrt();
            let shape = [out, per_group, kb, kb];
            let kernel = Tensor::<4>::random(shape, Distribution::Uniform(-bound, bound), device);
            Ok(kernel.into_data())
        };
        self.reinitialize_with(module, &mut draw)
    }
}

fn known_paths(infos: &[crate::grad_mult::ParamInfo]) -> String {
    let paths: Vec<&str> = infos
        .iter()
        .filter(|p| p.shape.len() >= 3)
        .take(5)
        .map(|p| p.path.as_str())
        .collect();
    paths.join(", ")
}

/// The float type of every parameter, by path.
fn float_dtypes<M: Module>(module: &M) -> BTreeMap<String, DType> {
    #[derive(Default)]
    struct Dtypes {
        path: Vec<String>,
        found: BTreeMap<String, DType>,
    }
    impl ModuleVisitor for Dtypes {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.found.insert(self.path.join("."), param.val().dtype());
        }
    }
    let mut visitor = Dtypes::default();
    module.visit(&mut visitor);
    visitor.found
}

/// Replaces the kernels named in `kernels` by their equivalent kernels.
struct Reinit<'a> {
    path: Vec<String>,
    kernels: BTreeMap<String, (&'a CslaConv, Vec<TensorData>)>,
    identity_init: IdentityInit,
    error: Option<RepOptError>,
}

impl ModuleMapper for Reinit<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some((conv, branches)) = self.kernels.get(&self.path.join(".")) else {
            return param;
        };
        let (conv, identity) = (*conv, self.identity_init);
        let error = &mut self.error;
        param.map(|tensor| {
            let device = tensor.device();
            let trainable = tensor.is_require_grad();
            let data = tensor.clone().into_data();
            match conv.equivalent_kernel(&data, branches, identity) {
                Ok(kernel) => {
                    let kernel = Tensor::<D>::from_data(kernel, &device);
                    if trainable {
                        kernel.require_grad()
                    } else {
                        kernel
                    }
                }
                Err(e) => {
                    error.get_or_insert(e);
                    tensor
                }
            }
        })
    }
}

impl<M: Module> RepOptHandler<M> for CslaModel {
    type Error = RepOptError;

    /// [`CslaModel::reinitialize`] with branch kernels drawn on the device of the model's first
    /// kernel.
    fn reinitialize(&self, model: M) -> Result<M> {
        let device = first_device(&model, &self.convs).unwrap_or_default();
        CslaModel::reinitialize(self, model, &device)
    }

    fn grad_mults(&self, model: &M, rule: UpdateRule, device: &Device) -> Result<GradMults> {
        CslaModel::grad_mults(self, model, rule, device)
    }
}

/// The device of the first kernel of `convs` found in `model`.
fn first_device<M: Module>(model: &M, convs: &[CslaConv]) -> Option<Device> {
    struct Find<'a> {
        path: Vec<String>,
        wanted: &'a [CslaConv],
        device: Option<Device>,
    }
    impl ModuleVisitor for Find<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            if self.device.is_none() && self.wanted.iter().any(|c| c.path == path) {
                self.device = Some(param.val().device());
            }
        }
    }
    let mut find = Find {
        path: Vec::new(),
        wanted: convs,
        device: None,
    };
    model.visit(&mut find);
    find.device
}
