//! Cost of one optimizer step (`ModuleOptimizer::step`) with Grad Mults, on a RepOpt-VGG-A0.
//!
//! On the flex CPU backend, it times:
//! * Burn's SGD and `RepSgd` (momentum 0.9, Nesterov, L2 decay 1e-4) without Grad Mults, with the
//!   Grad Mults of every 3×3 kernel as the handler gives them (kept factored in host memory: a
//!   value per output channel and tap, and the identity diagonal), the same kept dense (one value
//!   per weight), and factored ones applied with tensor operations (per-channel `α^p`,
//!   `α^p + β^p`, per step) for comparison;
//! * Burn's AdamW and `RepAdamW` without and with Grad Mults;
//! * one training step (forward, backward, SGD step) of a 10-class A0 on a batch of 32 3×32×32
//!   images.
//!
//! Gradients are drawn once; each timed step gets a fresh, uniquely owned copy made outside the
//! timed region, as a backward pass would hand it over. After criterion's runs, the optimizers are
//! also timed in interleaved rounds; the summary that follows criterion's output takes its ratios
//! from those. Run with `cargo bench -p repopt-bench --bench step_overhead`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamWConfig, GradientsParams, LearningRate, ModuleOptimizer, Optimizer, SgdConfig, SgdState,
};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use criterion::{Criterion, SamplingMode};
use repopt_core::{
    GradMults, RepAdamWConfig, RepOptimizerConfig, RepSgd, RepSgdConfig, UpdateRule,
};
use repopt_models::{BlockMode, RepOptVgg, RepOptVggConfig, RepOptVggHandler, VggScales};

const LEARNING_RATE: LearningRate = 1e-3;
const MOMENTUM: f64 = 0.9;
const WEIGHT_DECAY: f32 = 1e-4;
const BATCH_SIZE: usize = 32;
const IMAGE_SIZE: usize = 32;
const CIFAR_CLASSES: usize = 10;
/// Rounds of one step per optimizer, after criterion's runs.
const PAIRED_ROUNDS: usize = 30;
/// Rounds of one training step per optimizer, after criterion's runs.
const PAIRED_TRAINING_ROUNDS: usize = 10;

/// Benchmark ids, in the order of the summary.
const BURN_SGD: &str = "step/burn_sgd";
const REP_SGD_NO_MULTS: &str = "step/rep_sgd_no_mults";
const REP_SGD_HOST: &str = "step/rep_sgd_mults";
const REP_SGD_DENSE: &str = "step/rep_sgd_dense_mults";
const REP_SGD_FACTORED: &str = "step/rep_sgd_factored_tensor_ops";
const BURN_ADAMW: &str = "step/burn_adamw";
const REP_ADAMW_NO_MULTS: &str = "step/rep_adamw_no_mults";
const REP_ADAMW_DENSE: &str = "step/rep_adamw_dense_mults";
const TRAIN_BURN_SGD: &str = "train_step/burn_sgd";
const TRAIN_REP_SGD: &str = "train_step/rep_sgd_mults";

/// RepOpt-VGG-A0 with its ImageNet classifier (1000 classes).
fn a0() -> RepOptVggConfig {
    RepOptVggConfig::preset("a0").expect("a0 is a preset")
}

fn sgd_config() -> RepSgdConfig {
    RepSgdConfig::new()
        .with_momentum(MOMENTUM)
        .with_dampening(0.0)
        .with_nesterov(true)
        .with_weight_decay(WEIGHT_DECAY)
}

fn burn_sgd() -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig {
            momentum: MOMENTUM,
            dampening: 0.0,
            nesterov: true,
        }))
        .with_weight_decay(Some(WeightDecayConfig {
            penalty: WEIGHT_DECAY,
        }))
        .init()
}

/// AdamW with the same settings as [`RepAdamWConfig`]'s defaults.
fn burn_adamw() -> ModuleOptimizer {
    let rep = RepAdamWConfig::new();
    AdamWConfig::new()
        .with_beta_1(rep.beta_1)
        .with_beta_2(rep.beta_2)
        .with_epsilon(rep.epsilon)
        .with_weight_decay(rep.weight_decay)
        .init()
}

/// SGD with a factored Grad Mult: `g·α^p` everywhere, `g·(α^p + β^p)` at the kernel centre, `+ g`
/// on the diagonal centre of identity blocks. Only two vectors per kernel are stored; the
/// multiplication is done piecewise at every step.
#[derive(Clone)]
struct FactoredMultSgd {
    sgd: RepSgd,
    /// `α^p`, one per output channel.
    everywhere: Tensor<1>,
    /// `α^p + β^p`, one per output channel.
    centre: Tensor<1>,
    /// Whether the kernel's block has an identity branch.
    identity: bool,
}

impl FactoredMultSgd {
    fn apply(&self, grad: Tensor<4>) -> Tensor<4> {
        let [out_channels, in_channels, k, _] = grad.dims();
        let device = grad.device();
        let per_channel = |v: &Tensor<1>| v.clone().to_device(&device).reshape([-1, 1, 1, 1]);
        let at_centre = [
            0..out_channels,
            0..in_channels,
            k / 2..k / 2 + 1,
            k / 2..k / 2 + 1,
        ];
        let centre = grad.clone().slice(at_centre.clone());
        let mut new_centre = centre.clone() * per_channel(&self.centre);
        if self.identity {
            let eye =
                Tensor::<2>::eye(out_channels, &device).reshape([-1, in_channels as i32, 1, 1]);
            new_centre = new_centre + centre * eye;
        }
        (grad * per_channel(&self.everywhere)).slice_assign(at_centre, new_centre)
    }
}

impl Optimizer for FactoredMultSgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let dims = grad.dims();
        let kernel_dims: [usize; 4] = dims[..].try_into().expect("a 4-D kernel");
        let grad = self.apply(grad.reshape(kernel_dims)).reshape(dims);
        self.sgd.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <RepSgd as Optimizer>::to_device(state, device)
    }
}

/// Per block: the factored mult of its 3×3 kernel (for SGD, `p = 2`).
fn factored_mults(scales: &VggScales, device: &Device) -> Vec<(String, FactoredMultSgd)> {
    let vector = |values: Vec<f32>| {
        let len = values.len();
        Tensor::<1>::from_data(TensorData::new(values, [len]), device)
    };
    scales
        .blocks
        .iter()
        .map(|block| {
            let power = UpdateRule::Sgd.power();
            let alpha: Vec<f32> = block.conv.iter().map(|a| a.powi(power)).collect();
            let centre = alpha
                .iter()
                .zip(&block.conv_1x1)
                .map(|(a, b)| a + b.powi(power))
                .collect();
            let optim = FactoredMultSgd {
                sgd: sgd_config().build(None, true),
                everywhere: vector(alpha),
                centre: vector(centre),
                identity: block.spec.has_identity(),
            };
            (block.spec.kernel_path(), optim)
        })
        .collect()
}

fn factored_sgd(factored: &[(String, FactoredMultSgd)]) -> ModuleOptimizer {
    factored.iter().fold(
        ModuleOptimizer::from(sgd_config().build(None, true)),
        |optim, (path, mult)| optim.with_group(ParamGroup::from_path(path), mult.clone(), None),
    )
}

/// Largest `|factored − dense| / max|dense|` over all kernels, on random gradients.
fn factored_vs_dense(factored: &[(String, FactoredMultSgd)], dense: &GradMults) -> f32 {
    factored
        .iter()
        .map(|(path, mult)| {
            let dense = dense.get(path).expect("a dense mult for every kernel");
            let dims: [usize; 4] = dense.shape().try_into().expect("a 4-D kernel");
            let device = mult.everywhere.device();
            let grad = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let expected = dense.apply(grad.clone());
            let scale: f32 = expected.clone().abs().max().into_scalar();
            let diff: f32 = (mult.apply(grad) - expected).abs().max().into_scalar();
            diff / scale
        })
        .fold(0.0, f32::max)
}

/// Gradients for every trainable parameter of a module: drawn once, then copied for each step.
struct GradientSource {
    drawn: GradientsParams,
    device: Device,
    /// Number of gradient values.
    values: usize,
}

/// Registers a gradient for every trainable parameter it visits (not for buffers such as BN
/// running statistics): a copy of `source`'s, or a new random one.
struct GradientFiller<'a> {
    source: Option<&'a GradientsParams>,
    device: &'a Device,
    grads: GradientsParams,
    /// Number of gradient values registered.
    values: usize,
}

impl ModuleVisitor for GradientFiller<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let grad: Tensor<D> = match self.source {
            Some(source) => {
                let drawn: Tensor<D> = source.get(param.id).expect("a gradient per parameter");
                Tensor::from_data(drawn.into_data(), self.device)
            }
            None => Tensor::random(
                param.lazy_shape(),
                Distribution::Normal(0.0, 1e-2),
                self.device,
            ),
        };
        self.values += grad.shape().num_elements();
        self.grads.register(param.id, grad);
    }
}

impl GradientSource {
    /// Gradients live on the device without autodiff, as `backward` returns them.
    fn draw<M: Module>(module: &M, device: &Device) -> Self {
        let device = device.clone().without_autodiff();
        let GradientFiller { grads, values, .. } = Self::fill(module, None, &device);
        Self {
            drawn: grads,
            device,
            values,
        }
    }

    fn fresh_copy<M: Module>(&self, module: &M) -> GradientsParams {
        Self::fill(module, Some(&self.drawn), &self.device).grads
    }

    fn fill<'a, M: Module>(
        module: &M,
        source: Option<&'a GradientsParams>,
        device: &'a Device,
    ) -> GradientFiller<'a> {
        let mut filler = GradientFiller {
            source,
            device,
            grads: GradientsParams::new(),
            values: 0,
        };
        module.visit(&mut filler);
        filler
    }
}

/// A CIFAR-sized A0 trained on one fixed random batch.
struct Trainer {
    model: Option<RepOptVgg>,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    loss: CrossEntropyLoss,
}

impl Trainer {
    fn new(model: RepOptVgg, device: &Device) -> Self {
        let labels: Vec<i64> = (0..BATCH_SIZE as i64)
            .map(|i| i % CIFAR_CLASSES as i64)
            .collect();
        Self {
            model: Some(model),
            images: Tensor::random(
                [BATCH_SIZE, 3, IMAGE_SIZE, IMAGE_SIZE],
                Distribution::Normal(0.0, 1.0),
                device,
            ),
            labels: Tensor::from_data(TensorData::new(labels, [BATCH_SIZE]), device),
            loss: CrossEntropyLossConfig::new().init(device),
        }
    }

    /// Times `iters` training steps (forward, backward, optimizer step); each step's time is also
    /// added to `record`.
    fn time_steps(
        &mut self,
        iters: u64,
        optim: &mut ModuleOptimizer,
        record: &mut Vec<Duration>,
    ) -> Duration {
        time_each_step(&mut self.model, iters, record, |model| {
            let start = Instant::now();
            let logits = model.forward(self.images.clone());
            let loss = self.loss.forward(logits, self.labels.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let model = optim.step(LEARNING_RATE, model, grads);
            (model, start.elapsed())
        })
    }
}

/// Runs `iters` steps on the model in `slot`: `step` takes the model and gives it back with the
/// time it measured. Each step's time is added to `record`; returns their sum.
fn time_each_step(
    slot: &mut Option<RepOptVgg>,
    iters: u64,
    record: &mut Vec<Duration>,
    mut step: impl FnMut(RepOptVgg) -> (RepOptVgg, Duration),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let model = slot.take().expect("the model is back after each step");
        let (model, elapsed) = step(model);
        *slot = Some(model);
        total += elapsed;
        record.push(elapsed);
    }
    total
}

/// Per-step durations, for the summary.
#[derive(Default)]
struct Timings {
    /// Every step criterion timed, per benchmark.
    criterion: BTreeMap<&'static str, Vec<Duration>>,
    /// One step of each optimizer per round, taken in turn (see [`paired_rounds`]).
    rounds: Vec<BTreeMap<&'static str, Duration>>,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

impl Timings {
    fn criterion_median(&self, id: &str) -> Option<f64> {
        let times = self.criterion.get(id)?;
        median(times.iter().map(Duration::as_secs_f64).collect())
    }

    /// Median over the rounds of `f(time of id, time of base)`.
    fn paired(&self, id: &str, base: &str, f: impl Fn(f64, f64) -> f64) -> Option<f64> {
        let values = self
            .rounds
            .iter()
            .filter_map(|round| {
                Some(f(
                    round.get(id)?.as_secs_f64(),
                    round.get(base)?.as_secs_f64(),
                ))
            })
            .collect();
        median(values)
    }
}

/// Whether this run measures (`cargo bench`) rather than only checks the benchmarks
/// (`cargo test --benches`, `--list`); the same rule criterion follows.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    flag("--bench") && !flag("--test") && !flag("--list")
}

/// A model that is moved through the optimizers being compared.
struct Stepper {
    model: Option<RepOptVgg>,
    grads: GradientSource,
}

impl Stepper {
    /// Times `iters` optimizer steps; each step's time is also added to `record`.
    fn time_steps(
        &mut self,
        iters: u64,
        optim: &mut ModuleOptimizer,
        record: &mut Vec<Duration>,
    ) -> Duration {
        time_each_step(&mut self.model, iters, record, |model| {
            let grads = self.grads.fresh_copy(&model);
            let start = Instant::now();
            let model = optim.step(LEARNING_RATE, model, grads);
            (model, start.elapsed())
        })
    }
}

/// `rounds` rounds in which `time_one` times every optimizer once, in an order that rotates from
/// round to round. Optimizers compared this way share whatever load the machine has at the time,
/// which criterion's one-after-the-other runs do not.
fn paired_rounds(
    rounds: usize,
    optimizers: &mut [(&'static str, ModuleOptimizer)],
    mut time_one: impl FnMut(&mut ModuleOptimizer) -> Duration,
) -> Vec<BTreeMap<&'static str, Duration>> {
    let count = optimizers.len();
    (0..rounds)
        .map(|round| {
            (0..count)
                .map(|k| {
                    let (id, optim) = &mut optimizers[(round + k) % count];
                    (*id, time_one(optim))
                })
                .collect()
        })
        .collect()
}

/// Benchmarks `optimizers` (ids `<group>/<name>`) as criterion's group `group` after one untimed
/// step each (so that their states exist), then, when measuring, in `rounds` paired rounds; the
/// times go into `timings`. `time_steps(iters, optim, record)` times `iters` steps of `optim`,
/// adds each step's time to `record` and returns their sum.
fn bench_group(
    criterion: &mut Criterion,
    timings: &mut Timings,
    group: &str,
    rounds: usize,
    optimizers: &mut [(&'static str, ModuleOptimizer)],
    mut time_steps: impl FnMut(u64, &mut ModuleOptimizer, &mut Vec<Duration>) -> Duration,
) {
    for (_, optim) in optimizers.iter_mut() {
        time_steps(1, optim, &mut Vec::new());
    }
    let mut criterion_group = criterion.benchmark_group(group);
    criterion_group.sampling_mode(SamplingMode::Flat);
    for (id, optim) in optimizers.iter_mut() {
        let record = timings.criterion.entry(id).or_default();
        let name = id
            .strip_prefix(group)
            .and_then(|rest| rest.strip_prefix('/'))
            .expect("an id of the group");
        criterion_group.bench_function(name, |b| {
            b.iter_custom(|iters| time_steps(iters, optim, record))
        });
    }
    criterion_group.finish();
    if measuring() {
        let paired = paired_rounds(rounds, optimizers, |optim| {
            time_steps(1, optim, &mut Vec::new())
        });
        timings.rounds.extend(paired);
    }
}

/// Parameter counts of the A0 and the memory its Grad Mults take.
struct Sizes {
    /// Trainable parameters.
    params: usize,
    /// 3×3 kernels with a Grad Mult.
    kernels: usize,
    kernel_params: usize,
    /// `f32` values of the dense mults: one per kernel weight.
    dense_mult_bytes: usize,
    /// `f32` values of the factored mults: two per output channel.
    factored_mult_bytes: usize,
}

fn bench_steps(criterion: &mut Criterion, timings: &mut Timings) -> Sizes {
    let device = Device::flex().autodiff();
    device.seed(0);
    let config = a0();
    let model = config.init(&device);
    let scales = VggScales::random(&config, 0, (-1.0, 1.0), (-1.0, 1.0));
    let handler = RepOptVggHandler::new(scales.clone());
    let sgd_mults = handler
        .grad_mults_for(&model, UpdateRule::Sgd, &device)
        .expect("A0 mults");
    let adamw_mults = handler
        .grad_mults_for(&model, UpdateRule::AdamW, &device)
        .expect("A0 mults");
    let factored = factored_mults(&scales, &device.clone().without_autodiff());
    let mismatch = factored_vs_dense(&factored, &sgd_mults);
    assert!(
        mismatch < 1e-6,
        "factored and dense mults differ: {mismatch:e}"
    );

    let kernel_params: usize = sgd_mults
        .iter()
        .map(|(_, m)| m.shape().iter().product::<usize>())
        .sum();
    let sizes = Sizes {
        params: config.num_params(BlockMode::Target),
        kernels: sgd_mults.len(),
        kernel_params,
        dense_mult_bytes: 4 * kernel_params,
        factored_mult_bytes: 4 * 2 * scales.blocks.iter().map(|b| b.conv.len()).sum::<usize>(),
    };

    let mut optimizers: Vec<(&'static str, ModuleOptimizer)> = vec![
        (BURN_SGD, burn_sgd()),
        (
            REP_SGD_NO_MULTS,
            sgd_config().init(&model, &GradMults::new()).expect("valid"),
        ),
        (
            REP_SGD_HOST,
            sgd_config().init(&model, &sgd_mults).expect("valid"),
        ),
        (
            REP_SGD_DENSE,
            sgd_config()
                .init(&model, &sgd_mults.densified())
                .expect("valid"),
        ),
        (REP_SGD_FACTORED, factored_sgd(&factored)),
        (BURN_ADAMW, burn_adamw()),
        (
            REP_ADAMW_NO_MULTS,
            RepAdamWConfig::new()
                .init(&model, &GradMults::new())
                .expect("valid"),
        ),
        (
            REP_ADAMW_DENSE,
            RepAdamWConfig::new()
                .init(&model, &adamw_mults)
                .expect("valid"),
        ),
    ];
    let grads = GradientSource::draw(&model, &device);
    assert_eq!(
        grads.values, sizes.params,
        "one gradient per trainable value"
    );
    let mut stepper = Stepper {
        grads,
        model: Some(model),
    };
    bench_group(
        criterion,
        timings,
        "step",
        PAIRED_ROUNDS,
        &mut optimizers,
        |iters, optim, record| stepper.time_steps(iters, optim, record),
    );
    sizes
}

fn bench_training(criterion: &mut Criterion, timings: &mut Timings) {
    let device = Device::flex().autodiff();
    device.seed(1);
    let config = a0().with_num_classes(CIFAR_CLASSES);
    let model = config.init(&device);
    let scales = VggScales::random(&config, 0, (-1.0, 1.0), (-1.0, 1.0));
    let mults = RepOptVggHandler::new(scales)
        .grad_mults_for(&model, UpdateRule::Sgd, &device)
        .expect("A0 mults");
    let mut optimizers = vec![
        (TRAIN_BURN_SGD, burn_sgd()),
        (
            TRAIN_REP_SGD,
            sgd_config().init(&model, &mults).expect("valid"),
        ),
    ];
    let mut trainer = Trainer::new(model, &device);
    bench_group(
        criterion,
        timings,
        "train_step",
        PAIRED_TRAINING_ROUNDS,
        &mut optimizers,
        |iters, optim, record| trainer.time_steps(iters, optim, record),
    );
}

fn in_binary_units(bytes: usize) -> String {
    let kib = bytes as f64 / 1024.0;
    if kib < 1024.0 {
        format!("{kib:.1} KiB")
    } else {
        format!("{:.1} MiB", kib / 1024.0)
    }
}

fn print_summary(timings: &Timings, sizes: &Sizes) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n== Optimizer step on RepOpt-VGG-A0 (flex, {threads} threads, load average {}) ==",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "{:.2} M parameters, {:.2} M of them in the {} 3x3 kernels that carry a Grad Mult",
        sizes.params as f64 / 1e6,
        sizes.kernel_params as f64 / 1e6,
        sizes.kernels
    );
    let show = |value: Option<f64>, unit: &str, scale: f64| {
        value.map_or("-".to_string(), |v| format!("{:.3}{unit}", v * scale))
    };
    println!(
        "{:<32} {:>16} {:>16} {:>14}",
        "benchmark", "criterion median", "paired median", "paired ratio"
    );
    for (id, base) in [
        (BURN_SGD, BURN_SGD),
        (REP_SGD_NO_MULTS, BURN_SGD),
        (REP_SGD_HOST, BURN_SGD),
        (REP_SGD_DENSE, BURN_SGD),
        (REP_SGD_FACTORED, BURN_SGD),
        (BURN_ADAMW, BURN_ADAMW),
        (REP_ADAMW_NO_MULTS, BURN_ADAMW),
        (REP_ADAMW_DENSE, BURN_ADAMW),
        (TRAIN_BURN_SGD, TRAIN_BURN_SGD),
        (TRAIN_REP_SGD, TRAIN_BURN_SGD),
    ] {
        if !timings.criterion.contains_key(id) {
            continue;
        }
        println!(
            "{id:<32} {:>16} {:>16} {:>14}",
            show(timings.criterion_median(id), " ms", 1e3),
            show(timings.paired(id, base, |t, _| t), " ms", 1e3),
            show(timings.paired(id, base, |t, b| t / b), "", 1.0),
        );
    }
    let overhead = timings.paired(REP_SGD_HOST, REP_SGD_NO_MULTS, |t, b| t - b);
    let train = timings
        .paired(TRAIN_BURN_SGD, TRAIN_BURN_SGD, |t, _| t)
        .or(timings.criterion_median(TRAIN_BURN_SGD));
    if let (Some(overhead), Some(train)) = (overhead, train) {
        println!(
            "Grad Mult overhead (paired median of RepSgd with mults − without): {:.2} ms = {:.2} % of an A0 \
             training step (batch {BATCH_SIZE}, 3x{IMAGE_SIZE}x{IMAGE_SIZE}, {CIFAR_CLASSES} \
             classes, {:.1} ms)",
            overhead * 1e3,
            100.0 * overhead / train,
            train * 1e3
        );
    }
    println!(
        "Grad Mult memory: dense {} ({} B), factored {} ({} B)",
        in_binary_units(sizes.dense_mult_bytes),
        sizes.dense_mult_bytes,
        in_binary_units(sizes.factored_mult_bytes),
        sizes.factored_mult_bytes
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
        .configure_from_args();
    let mut timings = Timings::default();
    let sizes = bench_steps(&mut criterion, &mut timings);
    bench_training(&mut criterion, &mut timings);
    criterion.final_summary();
    if measuring() {
        print_summary(&timings, &sizes);
    }
}
