//! Tables and ratios from the measurements of a whole run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::case::{Backend, Mode};
use crate::gemm::GemmMeasurement;
use crate::measure::Measurement;

mod frameworks;
mod rates;
mod scaling;

use crate::{BenchError, Result};
pub use rates::{step_gflops, step_gflops_ratios};
pub use scaling::{SCALING_BATCH, SCALING_IMAGE_SIZE, SCALING_MODEL, scaling_panels};

/// A model, input and batch: the measurements that are compared with one another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Setting {
    /// Preset, and width multipliers where they replace the preset's (`Case::model_name`).
    pub model: String,
    /// Height and width of the input.
    pub image_size: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Classifier outputs.
    pub classes: usize,
}

impl Setting {
    fn of(m: &Measurement) -> Self {
        Self {
            model: m.case.model_name(),
            image_size: m.case.image_size,
            batch_size: m.case.batch_size,
            classes: m.case.classes,
        }
    }

    fn input(&self) -> String {
        format!("3×{0}×{0}", self.image_size)
    }
}

/// One ratio of two measurements of the same setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    /// The setting both measurements share.
    pub setting: Setting,
    /// What is divided: `images_per_second`, `peak_resident_bytes` or `step_resident_bytes`
    /// (peak minus the resident memory before the first step).
    pub quantity: String,
    /// Mode and backend of the numerator (`train-repopt@flex`).
    pub numerator: String,
    /// Mode and backend of the denominator.
    pub denominator: String,
    /// numerator / denominator: the median of `rounds`.
    pub value: f64,
    /// numerator / denominator in every round, round `i` of the numerator over round `i` of the
    /// denominator (measured next to each other); one value for a run of one round.
    #[serde(default)]
    pub rounds: Vec<f64>,
}

impl Ratio {
    /// The smallest and largest ratio over the rounds.
    pub fn range(&self) -> (f64, f64) {
        self.rounds
            .iter()
            .fold((self.value, self.value), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }
}

/// The machine the run was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` of `/proc/cpuinfo` (what `lscpu` shows).
    pub cpu_model: Option<String>,
    /// Threads available (`nproc`).
    pub threads: usize,
    /// `MemTotal` of `/proc/meminfo`.
    pub memory_bytes: Option<u64>,
}

impl Machine {
    /// This machine.
    pub fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * 1024);
        Self {
            cpu_model,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
        }
    }
}

/// A whole run, as written to the machine-readable results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The command that produced it.
    pub command: Option<String>,
    /// Wall seconds of the whole run (build excluded), as the caller measured them.
    pub elapsed_seconds: Option<f64>,
    /// The machine.
    pub machine: Machine,
    /// Every measurement, in the order taken.
    pub measurements: Vec<Measurement>,
    /// The ratios the tables show.
    pub ratios: Vec<Ratio>,
    /// The large matrix products timed in the same run, the yardstick of the compute rates.
    #[serde(default)]
    pub gemm: Vec<GemmMeasurement>,
}

/// Reads one JSON [`Measurement`] per non-empty line.
pub fn read_measurements(path: &Path) -> Result<Vec<Measurement>> {
    read_json_lines(path)
}

/// Reads one JSON [`GemmMeasurement`] per non-empty line.
pub fn read_gemm(path: &Path) -> Result<Vec<GemmMeasurement>> {
    read_json_lines(path)
}

fn read_json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        path: shown.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|source| BenchError::Json {
                path: shown.clone(),
                line: index + 1,
                source,
            })
        })
        .collect()
}

/// Measurements keyed by setting, then by (mode, backend), every round of a key in the order
/// taken; settings in the order first measured.
struct Index<'a> {
    settings: Vec<Setting>,
    by_setting: BTreeMap<Setting, BTreeMap<(Mode, Backend), Vec<&'a Measurement>>>,
}

impl<'a> Index<'a> {
    fn new(measurements: &'a [Measurement]) -> Self {
        let mut settings = Vec::new();
        let mut by_setting: BTreeMap<Setting, BTreeMap<_, Vec<_>>> = BTreeMap::new();
        for m in measurements {
            let setting = Setting::of(m);
            if !settings.contains(&setting) {
                settings.push(setting.clone());
            }
            by_setting
                .entry(setting)
                .or_default()
                .entry((m.case.mode, m.case.backend))
                .or_default()
                .push(m);
        }
        Self {
            settings,
            by_setting,
        }
    }

    /// Every round of `mode` on `backend` for `setting`, in the order taken (empty if none).
    fn rounds(&self, setting: &Setting, mode: Mode, backend: Backend) -> &[&'a Measurement] {
        self.by_setting
            .get(setting)
            .and_then(|modes| modes.get(&(mode, backend)))
            .map_or(&[], Vec::as_slice)
    }

    /// The round of median throughput (the upper middle one for an even count), which the
    /// tables show.
    fn get(&self, setting: &Setting, mode: Mode, backend: Backend) -> Option<&'a Measurement> {
        let mut rounds = self.rounds(setting, mode, backend).to_vec();
        rounds.sort_by(|a, b| a.images_per_second.total_cmp(&b.images_per_second));
        rounds.get(rounds.len() / 2).copied()
    }

    fn has_any(&self, setting: &Setting, modes: &[Mode]) -> bool {
        modes
            .iter()
            .any(|&mode| self.get(setting, mode, Backend::Flex).is_some())
    }

    /// The settings, in the order first measured, with any of `modes` measured on flex.
    fn settings_with_any(&self, modes: &[Mode]) -> Vec<&Setting> {
        self.settings
            .iter()
            .filter(|s| self.has_any(s, modes))
            .collect()
    }
}

const TRAINING: [Mode; 4] = [
    Mode::TrainRepopt,
    Mode::TrainSgd,
    Mode::TrainRepvgg,
    Mode::TrainHs,
];
const INFERENCE: [Mode; 4] = [
    Mode::InferTarget,
    Mode::InferTargetFused,
    Mode::InferRepvggFused,
    Mode::InferRepvggUnfused,
];
/// The ratio columns of the inference table: quantity, flex numerator, flex denominator.
const INFERENCE_RATIOS: [(&str, Mode, Mode); 4] = [
    (
        "images_per_second",
        Mode::InferTarget,
        Mode::InferRepvggFused,
    ),
    (
        "images_per_second",
        Mode::InferTargetFused,
        Mode::InferRepvggFused,
    ),
    (
        "images_per_second",
        Mode::InferRepvggFused,
        Mode::InferRepvggUnfused,
    ),
    (
        "peak_resident_bytes",
        Mode::InferRepvggFused,
        Mode::InferRepvggUnfused,
    ),
];

/// Memory the steps added: peak minus the resident memory before the first step.
pub fn step_resident_bytes(m: &Measurement) -> Option<u64> {
    Some(
        m.peak_resident_bytes?
            .saturating_sub(m.setup_resident_bytes?),
    )
}

/// Numerator, denominator and the quantities divided.
type Comparison = ((Mode, Backend), (Mode, Backend), &'static [&'static str]);

/// What the ratios divide, in the same setting: RepOpt against RepVGG (throughput, peak memory,
/// memory added by the steps), against plain SGD and against HyperSearch; for inference, Target
/// against fused RepVGG and fused against unfused RepVGG; flex against ndarray; and every mode on
/// flex against the same mode of the official PyTorch code (throughput and peak memory).
fn comparisons() -> Vec<Comparison> {
    let flex = |mode| (mode, Backend::Flex);
    let mut comparisons: Vec<Comparison> = vec![
        (
            flex(Mode::TrainRepopt),
            flex(Mode::TrainRepvgg),
            &[
                "images_per_second",
                "peak_resident_bytes",
                "step_resident_bytes",
            ],
        ),
        (
            flex(Mode::TrainRepopt),
            flex(Mode::TrainSgd),
            &["images_per_second"],
        ),
        (
            flex(Mode::TrainRepopt),
            flex(Mode::TrainHs),
            &["images_per_second", "peak_resident_bytes"],
        ),
        (
            flex(Mode::InferTarget),
            flex(Mode::InferRepvggFused),
            &["images_per_second"],
        ),
        (
            flex(Mode::InferTargetFused),
            flex(Mode::InferRepvggFused),
            &["images_per_second"],
        ),
        (
            flex(Mode::InferRepvggFused),
            flex(Mode::InferRepvggUnfused),
            &["images_per_second", "peak_resident_bytes"],
        ),
        (
            flex(Mode::TrainRepopt),
            (Mode::TrainRepopt, Backend::Ndarray),
            &["images_per_second"],
        ),
    ];
    comparisons.extend(Mode::ALL.into_iter().map(|mode| {
        (
            flex(mode),
            (mode, Backend::Pytorch),
            &["images_per_second", "peak_resident_bytes"][..],
        )
    }));
    comparisons
}

/// `name` of `m`: `images_per_second`, `peak_resident_bytes` or `step_resident_bytes`.
fn quantity(m: &Measurement, name: &str) -> Option<f64> {
    match name {
        "images_per_second" => Some(m.images_per_second),
        "peak_resident_bytes" => m.peak_resident_bytes.map(|b| b as f64),
        "step_resident_bytes" => step_resident_bytes(m).map(|b| b as f64),
        _ => None,
    }
}

/// The ratios of every setting (see [`comparisons`]), each over the rounds both sides have.
pub fn ratios(measurements: &[Measurement]) -> Vec<Ratio> {
    let index = Index::new(measurements);
    let mut ratios = Vec::new();
    for setting in &index.settings {
        for (num, den, quantities) in comparisons() {
            let (nums, dens) = (
                index.rounds(setting, num.0, num.1),
                index.rounds(setting, den.0, den.1),
            );
            for name in quantities {
                let rounds: Vec<f64> = nums
                    .iter()
                    .zip(dens)
                    .filter_map(|(n, d)| Some((quantity(n, name)?, quantity(d, name)?)))
                    .filter(|&(_, d)| d > 0.0)
                    .map(|(n, d)| n / d)
                    .collect();
                if rounds.is_empty() {
                    continue;
                }
                ratios.push(Ratio {
                    setting: setting.clone(),
                    quantity: (*name).to_string(),
                    numerator: format!("{}@{}", num.0, num.1),
                    denominator: format!("{}@{}", den.0, den.1),
                    value: crate::measure::median(&rounds),
                    rounds,
                });
            }
        }
    }
    ratios
}

fn find_ratio_entry<'r>(
    ratios: &'r [Ratio],
    setting: &Setting,
    quantity: &str,
    numerator: (Mode, Backend),
    denominator: (Mode, Backend),
) -> Option<&'r Ratio> {
    let numerator = format!("{}@{}", numerator.0, numerator.1);
    let denominator = format!("{}@{}", denominator.0, denominator.1);
    ratios.iter().find(|r| {
        &r.setting == setting
            && r.quantity == quantity
            && r.numerator == numerator
            && r.denominator == denominator
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1024.0 * 1024.0))
}

fn rate(images_per_second: f64) -> String {
    if images_per_second >= 100.0 {
        format!("{images_per_second:.0}")
    } else if images_per_second >= 10.0 {
        format!("{images_per_second:.1}")
    } else {
        format!("{images_per_second:.2}")
    }
}

fn times(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.2}×"))
}

/// A ratio as a table cell: its median, with the range over the rounds when there are several
/// (`1.23× (1.20–1.26)`), or `–`.
fn ratio_cell(ratio: Option<&Ratio>) -> String {
    match ratio {
        None => "–".into(),
        Some(r) if r.rounds.len() > 1 => {
            let (lo, hi) = r.range();
            format!("{:.2}× ({lo:.2}–{hi:.2})", r.value)
        }
        Some(r) => times(Some(r.value)),
    }
}

fn optional_mib(bytes: Option<u64>) -> String {
    bytes.map_or("–".into(), mib)
}

/// Markdown tables of a run: training, the parts of a training step, inference, backends, the
/// official PyTorch code, and the compute rates against the large-gemm rate of `gemm`.
pub fn markdown(
    measurements: &[Measurement],
    ratios: &[Ratio],
    gemm: &[GemmMeasurement],
) -> String {
    let index = Index::new(measurements);
    let mut out = String::new();
    let training = index.settings_with_any(&TRAINING);
    if !training.is_empty() {
        training_speed_table(&mut out, &index, ratios, &training);
        training_memory_table(&mut out, &index, ratios, &training);
        training_phases_table(&mut out, &index, &training);
    }
    let inference = index.settings_with_any(&INFERENCE);
    if !inference.is_empty() {
        inference_table(&mut out, &index, ratios, &inference);
    }
    backends_table(&mut out, &index);
    frameworks::pytorch_table(&mut out, &index, ratios);
    rates::rates_table(&mut out, &index, gemm);
    out
}

/// A flex ratio of `setting` as a table cell (`1.23×`, or `–` where it was not measured).
fn flex_ratio(ratios: &[Ratio], setting: &Setting, quantity: &str, num: Mode, den: Mode) -> String {
    ratio_cell(find_ratio_entry(
        ratios,
        setting,
        quantity,
        (num, Backend::Flex),
        (den, Backend::Flex),
    ))
}

/// One cell per mode of `modes` for `setting` on flex: `cell` of its measurement, or `–`.
fn mode_cells(
    index: &Index,
    setting: &Setting,
    modes: &[Mode],
    cell: impl Fn(&Measurement) -> String,
) -> Vec<String> {
    modes
        .iter()
        .map(|&mode| {
            index
                .get(setting, mode, Backend::Flex)
                .map_or("–".into(), &cell)
        })
        .collect()
}

/// Writes one table row: the model, input and batch of `setting`, then `cells`.
fn write_row(out: &mut String, setting: &Setting, cells: &[String]) {
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} |",
        setting.model,
        setting.input(),
        setting.batch_size,
        cells.join(" | ")
    );
}

/// Writes the training throughput table: images/s of every training mode at the median step,
/// then RepOpt against RepVGG (in bold) and against plain SGD.
fn training_speed_table(out: &mut String, index: &Index, ratios: &[Ratio], settings: &[&Setting]) {
    out.push_str(
        "Training: images/s at the median step (forward, loss, backward, SGD step).\n\n\
         | model | input | batch | Target + RepOpt SGD | Target + SGD | RepVGG | HyperSearch \
         | **RepOpt / RepVGG** | RepOpt / SGD |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for setting in settings {
        let mut cells = mode_cells(index, setting, &TRAINING, |m| rate(m.images_per_second));
        let speed = |den| flex_ratio(ratios, setting, "images_per_second", Mode::TrainRepopt, den);
        cells.push(format!("**{}**", speed(Mode::TrainRepvgg)));
        cells.push(speed(Mode::TrainSgd));
        write_row(out, setting, &cells);
    }
}

/// Writes the training memory table: peak resident memory of every training mode, with what the
/// steps added in brackets, then RepOpt against RepVGG for both (the peak in bold).
fn training_memory_table(out: &mut String, index: &Index, ratios: &[Ratio], settings: &[&Setting]) {
    out.push_str(
        "\nTraining: peak resident memory of the process (`VmHWM`), MiB; in brackets, what \
         the steps added to the memory resident before the first step.\n\n\
         | model | input | batch | Target + RepOpt SGD | Target + SGD | RepVGG | HyperSearch \
         | **RepOpt / RepVGG peak** | RepOpt / RepVGG added |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for setting in settings {
        let mut cells = mode_cells(index, setting, &TRAINING, |m| {
            format!(
                "{} (+{})",
                optional_mib(m.peak_resident_bytes),
                optional_mib(step_resident_bytes(m))
            )
        });
        let memory = |quantity| {
            flex_ratio(
                ratios,
                setting,
                quantity,
                Mode::TrainRepopt,
                Mode::TrainRepvgg,
            )
        };
        cells.push(format!("**{}**", memory("peak_resident_bytes")));
        cells.push(memory("step_resident_bytes"));
        write_row(out, setting, &cells);
    }
}

/// Writes the table of the parts of a training step: median forward + loss, backward and
/// optimizer-step milliseconds of every training mode.
fn training_phases_table(out: &mut String, index: &Index, settings: &[&Setting]) {
    out.push_str(
        "\nParts of a training step, medians in ms: forward + loss / backward / optimizer \
         step.\n\n\
         | model | input | batch | Target + RepOpt SGD | Target + SGD | RepVGG | HyperSearch |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for setting in settings {
        let cells = mode_cells(index, setting, &TRAINING, |m| {
            m.phases.map_or("–".into(), |p| {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    p.forward_seconds * 1e3,
                    p.backward_seconds * 1e3,
                    p.optimizer_seconds * 1e3
                )
            })
        });
        write_row(out, setting, &cells);
    }
}

/// Writes the inference table: images/s and peak memory (with what the steps added) of every
/// inference mode, then Target and fused Target against fused RepVGG, and fused against unfused
/// RepVGG in throughput and peak memory.
fn inference_table(out: &mut String, index: &Index, ratios: &[Ratio], settings: &[&Setting]) {
    out.push_str(
        "\nInference (eval mode, forward only): images/s at the median step · peak resident \
         memory in MiB (in brackets, what the steps added).\n\n\
         | model | input | batch | Target | Target fused | RepVGG fused | RepVGG unfused \
         | Target / RepVGG fused | Target fused / RepVGG fused | RepVGG fused / unfused \
         | fused / unfused peak memory |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for setting in settings {
        let mut cells = mode_cells(index, setting, &INFERENCE, |m| {
            format!(
                "{} · {} (+{})",
                rate(m.images_per_second),
                optional_mib(m.peak_resident_bytes),
                optional_mib(step_resident_bytes(m))
            )
        });
        cells.extend(
            INFERENCE_RATIOS
                .iter()
                .map(|&(quantity, num, den)| flex_ratio(ratios, setting, quantity, num, den)),
        );
        write_row(out, setting, &cells);
    }
}

/// Every mode of every setting measured on both backends: (setting, flex run, ndarray run).
/// Every (setting, mode) measured both on flex and on `other`: the two runs, flex first.
fn flex_pairs<'i, 'a>(
    index: &'i Index<'a>,
    other: Backend,
) -> Vec<(&'i Setting, Mode, &'a Measurement, &'a Measurement)> {
    index
        .settings
        .iter()
        .flat_map(|setting| {
            Mode::ALL.into_iter().filter_map(move |mode| {
                Some((
                    setting,
                    mode,
                    index.get(setting, mode, Backend::Flex)?,
                    index.get(setting, mode, other)?,
                ))
            })
        })
        .collect()
}

/// Writes the backends table, if any mode was measured on both: images/s of the same step on
/// `flex` and on `ndarray`, and their ratio.
fn backends_table(out: &mut String, index: &Index) {
    let pairs = flex_pairs(index, Backend::Ndarray);
    if pairs.is_empty() {
        return;
    }
    out.push_str(
        "\nBackends: the same step on Burn's `flex` and on the deprecated `ndarray` backend.\n\n\
         | model | input | batch | mode | flex img/s | ndarray img/s | flex / ndarray |\n\
         |---|---|---:|---|---:|---:|---:|\n",
    );
    for (setting, mode, flex_run, ndarray_run) in pairs {
        let cells = [
            mode.label().to_string(),
            rate(flex_run.images_per_second),
            rate(ndarray_run.images_per_second),
            format!(
                "{:.2}×",
                flex_run.images_per_second / ndarray_run.images_per_second
            ),
        ];
        write_row(out, setting, &cells);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Case;

    fn measurement(mode: Mode, backend: Backend, images_per_second: f64, peak: u64) -> Measurement {
        Measurement {
            case: Case {
                preset: "a0".into(),
                width: None,
                image_size: 32,
                batch_size: 32,
                classes: 10,
                mode,
                backend,
                conv: repopt_models::ConvImpl::Native,
                gradient_checkpointing: false,
                warmup_steps: 3,
                measured_steps: 10,
                seed: 0,
            },
            params: 1,
            step_seconds: vec![32.0 / images_per_second],
            median_step_seconds: 32.0 / images_per_second,
            images_per_second,
            phases: None,
            final_loss: None,
            setup_resident_bytes: Some(100),
            setup_peak_resident_bytes: Some(100),
            peak_resident_bytes: Some(peak),
            threads: 2,
            load_average: None,
            wall_seconds: 1.0,
            framework: None,
        }
    }

    #[test]
    fn ratios_compare_the_same_setting() {
        let measurements = vec![
            measurement(Mode::TrainRepopt, Backend::Flex, 200.0, 600),
            measurement(Mode::TrainRepvgg, Backend::Flex, 100.0, 1100),
            measurement(Mode::TrainRepopt, Backend::Ndarray, 40.0, 600),
        ];
        let ratios = ratios(&measurements);
        let setting = Setting::of(&measurements[0]);
        let get = |quantity, num, den| {
            find_ratio_entry(&ratios, &setting, quantity, num, den).map(|r| r.value)
        };
        let flex = |mode| (mode, Backend::Flex);
        assert_eq!(
            get(
                "images_per_second",
                flex(Mode::TrainRepopt),
                flex(Mode::TrainRepvgg)
            ),
            Some(2.0)
        );
        assert_eq!(
            get(
                "step_resident_bytes",
                flex(Mode::TrainRepopt),
                flex(Mode::TrainRepvgg)
            ),
            Some(0.5)
        );
        assert_eq!(
            get(
                "images_per_second",
                flex(Mode::TrainRepopt),
                (Mode::TrainRepopt, Backend::Ndarray)
            ),
            Some(5.0)
        );
        let table = markdown(&measurements, &ratios, &[]);
        assert!(table.contains("**2.00×**"), "{table}");
        assert!(table.contains("| 5.00× |"), "{table}");
    }

    #[test]
    fn results_round_trip_through_json_lines() {
        let dir = std::env::temp_dir().join(format!("repopt-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.jsonl");
        let m = measurement(Mode::InferTarget, Backend::Flex, 1000.0, 50);
        let line = serde_json::to_string(&m).unwrap();
        std::fs::write(&path, format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(read_measurements(&path).unwrap(), vec![m.clone(), m]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ratios_pair_rounds_and_report_their_median_and_range() {
        // Three rounds: RepOpt 200, 210, 180 img/s beside RepVGG 100, 100, 120.
        let measurements = vec![
            measurement(Mode::TrainRepopt, Backend::Flex, 200.0, 600),
            measurement(Mode::TrainRepvgg, Backend::Flex, 100.0, 1000),
            measurement(Mode::TrainRepopt, Backend::Flex, 210.0, 600),
            measurement(Mode::TrainRepvgg, Backend::Flex, 100.0, 1000),
            measurement(Mode::TrainRepopt, Backend::Flex, 180.0, 600),
            measurement(Mode::TrainRepvgg, Backend::Flex, 120.0, 1000),
        ];
        let ratios = ratios(&measurements);
        let setting = Setting::of(&measurements[0]);
        let flex = |mode| (mode, Backend::Flex);
        let speed = find_ratio_entry(
            &ratios,
            &setting,
            "images_per_second",
            flex(Mode::TrainRepopt),
            flex(Mode::TrainRepvgg),
        )
        .unwrap();
        assert_eq!(speed.rounds, vec![2.0, 2.1, 1.5]);
        assert_eq!(speed.value, 2.0);
        assert_eq!(speed.range(), (1.5, 2.1));
        let table = markdown(&measurements, &ratios, &[]);
        assert!(table.contains("**2.00× (1.50–2.10)**"), "{table}");
        // The tables show the round of median throughput.
        assert!(table.contains("| 200 | –"), "{table}");
    }

    #[test]
    fn pytorch_runs_are_compared_mode_by_mode() {
        let measurements = vec![
            measurement(Mode::TrainRepopt, Backend::Flex, 300.0, 600),
            measurement(Mode::TrainRepopt, Backend::Pytorch, 100.0, 400),
            measurement(Mode::InferTarget, Backend::Flex, 900.0, 100),
        ];
        let ratios = ratios(&measurements);
        let setting = Setting::of(&measurements[0]);
        let train = |backend| (Mode::TrainRepopt, backend);
        let get = |quantity| {
            find_ratio_entry(
                &ratios,
                &setting,
                quantity,
                train(Backend::Flex),
                train(Backend::Pytorch),
            )
            .map(|r| r.value)
        };
        assert_eq!(get("images_per_second"), Some(3.0));
        assert_eq!(get("peak_resident_bytes"), Some(1.5));
        let table = markdown(&measurements, &ratios, &[]);
        assert!(
            table.contains("| Target + RepOpt SGD | 300 | 100 | **3.00×** |"),
            "{table}"
        );
        // A mode PyTorch did not run has no row.
        assert!(!table.contains("| Target | 900 |"), "{table}");
    }

    #[test]
    fn training_rates_are_set_against_the_gemm_rate() {
        let m = measurement(Mode::TrainRepopt, Backend::Flex, 320.0, 600);
        let config = m.case.config().unwrap();
        let macs = config.forward_macs(32, repopt_models::BlockMode::Target) as f64;
        let expected = 6.0 * macs * 320.0 / 1e9;
        let gflops = step_gflops(&m).unwrap();
        assert!(
            (gflops - expected).abs() < 1e-9 * expected,
            "{gflops} vs {expected}"
        );
        let gemm = GemmMeasurement {
            backend: Backend::Flex,
            size: 2048,
            seconds: vec![1.0],
            median_seconds: 1.0,
            gflops: 4.0 * expected,
            threads: 2,
        };
        let ratios = step_gflops_ratios(std::slice::from_ref(&m), std::slice::from_ref(&gemm));
        assert_eq!(ratios.len(), 1);
        assert!((ratios[0].value - 0.25).abs() < 1e-12);
        assert_eq!(ratios[0].denominator, "gemm-2048@flex");
        let table = markdown(&[m], &ratios, &[gemm]);
        assert!(table.contains("| **0.25** |"), "{table}");
    }

    /// A line of `benches/pytorch/bench.py` (its schema, shortened) reads as a measurement.
    #[test]
    fn a_pytorch_line_reads_as_a_measurement() {
        let line = r#"{"case": {"preset": "a0", "width": null, "image_size": 32, "batch_size": 32,
            "classes": 10, "mode": "train-repopt", "backend": "pytorch", "conv": "native",
            "warmup_steps": 3, "measured_steps": 2, "seed": 0}, "params": 7045690,
            "step_seconds": [0.12, 0.13], "median_step_seconds": 0.13,
            "images_per_second": 246.15, "phases": {"forward_seconds": 0.03,
            "backward_seconds": 0.07, "optimizer_seconds": 0.02}, "final_loss": 2.1,
            "setup_resident_bytes": 1000, "setup_peak_resident_bytes": 1100,
            "peak_resident_bytes": 2000, "threads": 2, "load_average": [1.0, 1.0, 1.0],
            "wall_seconds": 3.0, "framework": {"name": "pytorch", "version": "2.15.0",
            "official_code": "/x/official_code"}}"#
            .replace('\n', " ");
        let m: Measurement = serde_json::from_str(&line).unwrap();
        assert_eq!(m.case.backend, Backend::Pytorch);
        assert!(!m.case.gradient_checkpointing);
        assert_eq!(m.framework.unwrap().version, "2.15.0");
    }
}
