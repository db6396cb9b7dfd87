//! Grad Mults: constant, per-parameter gradient multipliers.
//!
//! A RepOptimizer replaces a parameter's gradient `g` by `g ⊙ M` before its update rule, where `M`
//! (the *Grad Mult*) is a constant tensor of the parameter's shape. Mults are keyed by the
//! parameter's module path (`stage1.0.conv.weight`), which is stable across saving and loading a
//! model, and resolved to [`ParamId`]s against a concrete module when an optimizer is built.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::error::{RepOptError, Result};
use crate::factored_mult::FactoredMult;

/// A parameter of a module, as seen by a [`ModuleVisitor`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Dotted module path, e.g. `stage1.0.conv.weight`.
    pub path: String,
    /// The parameter's id.
    pub id: ParamId,
    /// The parameter's shape.
    pub shape: Vec<usize>,
}

/// Lists every float parameter of `module` with its path, id and shape, in visiting order.
pub fn param_infos<M: Module>(module: &M) -> Vec<ParamInfo> {
    #[derive(Default)]
    struct Collector {
        path: Vec<String>,
        params: Vec<ParamInfo>,
    }
    impl ModuleVisitor for Collector {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.params.push(ParamInfo {
                path: self.path.join("."),
                id: param.id,
                shape: param.lazy_shape().to_vec(),
            });
        }
    }
    let mut collector = Collector::default();
    module.visit(&mut collector);
    collector.params
}

/// One constant gradient multiplier `M`.
///
/// The values are kept in host memory, where the one-pass SGD step of CPU backends reads them in
/// place; a kernel mult of a CSLA conv is kept factored there ([`FactoredMult`]: one value per
/// output channel and tap, and the identity diagonal), not one value per weight. A dense tensor
/// copy is made once for each device whose step multiplies tensors (a GPU, or AdamW), so
/// multi-device training keeps working without a transfer per step.
#[derive(Clone)]
pub struct GradMult {
    shape: Vec<usize>,
    host: Arc<HostValues>,
    copies: Arc<Mutex<Vec<(Device, Tensor<1>)>>>,
}

/// A mult's values in host memory.
#[derive(Debug)]
enum HostValues {
    /// Row-major values, flat, `f32` or `f64`.
    Dense(TensorData),
    /// An `f32` kernel mult that depends on the input channel only on a diagonal.
    Factored(FactoredMult),
}

impl HostValues {
    /// Dense values, factored where that is exact and smaller.
    fn new(data: TensorData, shape: &[usize]) -> Self {
        let factored = match data.dtype() {
            DType::F32 => data
                .as_slice::<f32>()
                .ok()
                .and_then(|values| FactoredMult::compress(values, shape)),
            _ => None,
        };
        match factored {
            Some(factored) => Self::Factored(factored),
            None => Self::Dense(data),
        }
    }

    /// The dense values, flat (a copy).
    fn dense(&self) -> TensorData {
        match self {
            Self::Dense(data) => data.clone(),
            Self::Factored(factored) => {
                let values = factored.expand();
                let len = values.len();
                TensorData::new(values, [len])
            }
        }
    }
}

impl core::fmt::Debug for GradMult {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GradMult")
            .field("shape", &self.shape)
            .finish_non_exhaustive()
    }
}

impl GradMult {
    /// A mult from host data (its shape is the data's shape) for gradients on `device`, in the
    /// data's float type (`f32` or `f64`; other types become `f32`).
    pub fn from_data(data: TensorData, device: &Device) -> Self {
        let shape = data.shape().to_vec();
        let numel = shape.iter().product::<usize>();
        let device = device.clone().without_autodiff();
        let data = match data.dtype() {
            DType::F32 | DType::F64 => data,
            _ => data.convert::<f32>(),
        };
        let (bytes, _, dtype) = data.into_parts();
        let flat = TensorData::from_bytes(bytes, [numel], dtype);
        let mult = Self {
            host: Arc::new(HostValues::new(flat, &shape)),
            shape,
            copies: Arc::default(),
        };
        // Upload now to a device with memory of its own, so that a failure shows up here; a CPU
        // backend's step reads the host values.
        if !crate::host_memory::is_host_memory(&device) {
            mult.values_on(&device);
        }
        mult
    }

    /// A mult from a tensor (detached from any autodiff graph).
    pub fn from_tensor<const D: usize>(tensor: Tensor<D>) -> Self {
        let device = tensor.device();
        Self::from_data(tensor.into_data(), &device)
    }

    /// Row-major values and their shape; checks `values.len()` against the shape.
    pub fn from_values(values: Vec<f32>, shape: Vec<usize>, device: &Device) -> Result<Self> {
        let needed = shape.iter().product::<usize>();
        if values.len() != needed {
            return Err(RepOptError::BadMultData {
                path: String::from("<unnamed>"),
                shape,
                len: values.len(),
                needed,
            });
        }
        Ok(Self::from_data(TensorData::new(values, shape), device))
    }

    /// The parameter shape this mult is for.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values (a copy), shaped as the parameter.
    pub fn to_data(&self) -> TensorData {
        let (bytes, _, dtype) = self.host.dense().into_parts();
        TensorData::from_bytes(bytes, self.shape.clone(), dtype)
    }

    /// Whether the mult is `f32`, and so [`apply_host`](Self::apply_host) can apply it.
    pub fn is_f32(&self) -> bool {
        match self.host.as_ref() {
            HostValues::Dense(data) => data.dtype() == DType::F32,
            HostValues::Factored(_) => true,
        }
    }

    /// The same mult with its host values kept one per weight, never factored (for comparing the
    /// two forms; both give the same products bit for bit).
    pub fn densified(&self) -> Self {
        Self {
            shape: self.shape.clone(),
            host: Arc::new(HostValues::Dense(self.host.dense())),
            copies: Arc::default(),
        }
    }

    /// Whether the host values are kept factored (per output channel and tap) rather than one
    /// per weight.
    pub fn is_factored(&self) -> bool {
        matches!(self.host.as_ref(), HostValues::Factored(_))
    }

    /// `grads ⊙ M` in place on host values (row-major, of the parameter's shape), read from the
    /// mult's host memory without a copy. Returns `false`, leaving `grads` alone, for an `f64`
    /// mult.
    ///
    /// # Panics
    /// If `grads` has another length than the mult.
    pub fn apply_host(&self, grads: &mut [f32]) -> bool {
        match self.host.as_ref() {
            HostValues::Factored(factored) => factored.apply_in_place(grads),
            HostValues::Dense(data) => {
                let Ok(mult) = data.as_slice::<f32>() else {
                    return false;
                };
                assert_eq!(
                    grads.len(),
                    mult.len(),
                    "Grad Mult and gradient sizes differ"
                );
                for (g, &m) in grads.iter_mut().zip(mult) {
                    *g *= m;
                }
            }
        }
        true
    }

    /// The mult as a tensor of rank `D` on `device` (cached per device).
    ///
    /// # Panics
    /// If `D` is not the mult's rank. [`GradMults::validate`] rules this out for parameters.
    pub fn tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        assert_eq!(D, self.shape.len(), "Grad Mult rank mismatch");
        let dims: [usize; D] = core::array::from_fn(|i| self.shape[i]);
        self.values_on(device).reshape(dims)
    }

    /// The flat values on `device` (copied there once).
    fn values_on(&self, device: &Device) -> Tensor<1> {
        let device = device.clone().without_autodiff();
        let mut copies = self.copies.lock().expect("Grad Mult cache poisoned");
        if let Some((_, values)) = copies.iter().find(|(d, _)| *d == device) {
            return values.clone();
        }
        let values = Tensor::<1>::from_data(self.host.dense(), &device);
        copies.push((device, values.clone()));
        values
    }

    /// `grad ⊙ M`, computed on the gradient's device (and in its float type).
    pub fn apply<const D: usize>(&self, grad: Tensor<D>) -> Tensor<D> {
        let mult = self.tensor::<D>(&grad.device());
        let dtype = grad.dtype();
        let mult = if mult.dtype() == dtype {
            mult
        } else {
            mult.cast(dtype)
        };
        grad.mul(mult)
    }

    fn check_finite(&self, path: &str) -> Result<()> {
        let first = match self.host.as_ref() {
            HostValues::Factored(factored) => factored.first_non_finite(),
            HostValues::Dense(data) => data
                .clone()
                .convert::<f64>()
                .try_to_vec::<f64>()
                .expect("Grad Mults are float tensors")
                .iter()
                .position(|v| !v.is_finite()),
        };
        match first {
            Some(index) => Err(RepOptError::NonFiniteMult {
                path: path.to_string(),
                index,
            }),
            None => Ok(()),
        }
    }
}

/// Grad Mults for a set of parameters, keyed by module path.
#[derive(Clone, Debug, Default)]
pub struct GradMults {
    mults: BTreeMap<String, GradMult>,
}

impl GradMults {
    /// No mults: a RepOptimizer built from this is the plain optimizer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the mult of the parameter at `path`. A path may be given only once.
    pub fn insert(&mut self, path: impl Into<String>, mult: GradMult) -> Result<()> {
        let path = path.into();
        if self.mults.contains_key(&path) {
            return Err(RepOptError::DuplicateMult { path });
        }
        self.mults.insert(path, mult);
        Ok(())
    }

    /// The mult registered for `path`.
    pub fn get(&self, path: &str) -> Option<&GradMult> {
        self.mults.get(path)
    }

    /// Number of parameters with a mult.
    pub fn len(&self) -> usize {
        self.mults.len()
    }

    /// Whether no parameter has a mult.
    pub fn is_empty(&self) -> bool {
        self.mults.is_empty()
    }

    /// Paths and mults, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &GradMult)> {
        self.mults.iter().map(|(path, mult)| (path.as_str(), mult))
    }

    /// Every mult [`densified`](GradMult::densified).
    pub fn densified(&self) -> Self {
        let mults = self
            .mults
            .iter()
            .map(|(path, mult)| (path.clone(), mult.densified()))
            .collect();
        Self { mults }
    }

    /// Prepends `prefix.` to every path, for a model nested inside a larger module.
    pub fn with_prefix(self, prefix: &str) -> Self {
        let mults = self
            .mults
            .into_iter()
            .map(|(path, mult)| (format!("{prefix}.{path}"), mult))
            .collect();
        Self { mults }
    }

    /// Checks the mults against `module`: every path names a parameter, every shape equals its
    /// parameter's shape and every value is finite. Returns each parameter with its mult (if any).
    pub fn validate<M: Module>(&self, module: &M) -> Result<Vec<(ParamInfo, Option<GradMult>)>> {
        let params = param_infos(module);
        for (path, mult) in &self.mults {
            let Some(param) = params.iter().find(|p| &p.path == path) else {
                let known = params
                    .iter()
                    .filter(|p| p.shape.len() >= 3)
                    .take(4)
                    .map(|p| format!("`{}`", p.path))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(RepOptError::UnknownParam {
                    path: path.clone(),
                    known,
                });
            };
            if param.shape != mult.shape {
                return Err(RepOptError::ShapeMismatch {
                    path: path.clone(),
                    expected: param.shape.clone(),
                    found: mult.shape.clone(),
                });
            }
            mult.check_finite(path)?;
        }
        Ok(params
            .into_iter()
            .map(|param| {
                let mult = self.mults.get(&param.path).cloned();
                (param, mult)
            })
            .collect())
    }

    /// The mults keyed by the [`ParamId`]s they have in `module` (validated first).
    pub fn by_id<M: Module>(&self, module: &M) -> Result<BTreeMap<ParamId, GradMult>> {
        Ok(self
            .validate(module)?
            .into_iter()
            .filter_map(|(param, mult)| mult.map(|mult| (param.id, mult)))
            .collect())
    }
}
