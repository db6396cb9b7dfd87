//! The `repopt` command line: its flags, and config-file merging (the subcommands themselves
//! live in `commands`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand};

use crate::compute_pool::{Denormals, compute_pool};
use crate::config::RunConfig;
use crate::error::{Result, TrainError};
use crate::logging::Verbosity;
use crate::run_folder;

const ABOUT: &str =
    "RepOptimizers: train plain RepOpt-VGG models whose structural prior lives in the optimizer";

const WORKFLOW: &str = "\
The paper's workflow, end to end:

  1. Hyper-search: train the three-branch model with trainable scales on a small set.
       repopt hs --data DATA --preset a0 --epochs 30 --out runs/hs
     (writes runs/hs/scales.safetensors; `repopt extract-scales --run runs/hs` does it again)
  2. Look at the scales:
       repopt inspect-scales runs/hs/scales.safetensors
  3. Train the plain target model with the RepOptimizer built from those scales:
       repopt train --method repopt --scales runs/hs/scales.safetensors --data DATA --out runs/repopt
     or from an official release: --preset b1 --scales RepOpt-VGG-B1-scales.pth
     Baselines: --method plain (ordinary SGD), repvgg (three branches, fused to evaluate),
     csla (the equivalent multi-branch model), repopt-ones (all scales 1); the paper's
     ablations reinit-only (Rule of Initialization, plain SGD) and mults-only (Grad Mults,
     ordinary initialisation) take --scales too.
  4. Evaluate:
       repopt eval --run runs/repopt
     RepOpt-GhostNet: --model ghostnet --preset 0_5x --scales RepOptGhostNet_0_5x_scales.pth
     (repvgg is then the RepGhost baseline; eval works on its runs, export/quantize do not).
  5. Check the equivalence the method rests on (CSLA + SGD == target + RepOptimizer):
       repopt verify --preset tiny --scales runs/hs/scales.safetensors

DATA is a folder: class sub-folders (`train/<class>/*.jpg`, `test/<class>/`), CIFAR-10/100
binary batches, or MNIST/Fashion-MNIST IDX files. Every training flag can also come from a
JSON file (--config run.json, keys as the flags with `_`); flags override the file. Each run
folder gets run.json, model.bpk, metrics.csv, experiment.log and checkpoint/ (resume with
--resume). GPU backends are cargo features (--features wgpu / cuda) chosen with --device.";

/// The `repopt` command line.
#[derive(Parser, Debug)]
#[command(name = "repopt", version, about = ABOUT, long_about = None, after_long_help = WORKFLOW)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Say more on stderr: -v adds debug messages and Burn's own, -vv everything.
    #[arg(short, long, action = ArgAction::Count, global = true, display_order = 900)]
    pub verbose: u8,
    /// Say only warnings and errors on stderr (no progress); results still go to stdout.
    #[arg(short, long, global = true, display_order = 900)]
    pub quiet: bool,
    /// Threads of the cpu device's computation [default: `RAYON_NUM_THREADS`, else one per
    /// core]. The command runs inside a pool of its own, so the model's parallel loops never
    /// hand their work from another thread. With several jobs side by side, give each its share
    /// (`--threads 1` for one job per core). Changes how fast a run computes, not what it
    /// computes; not a setting of the run.
    #[arg(long, global = true, display_order = 900)]
    pub threads: Option<usize>,
    /// Keep subnormal floats (below 1.2e-38) on the compute threads instead of flushing them
    /// to zero. They appear in long trainings (weights of channels that only decay) and make
    /// every operation that touches them slow; flushing changes no value at or above 1.2e-38.
    /// Not a setting of the run.
    #[arg(long, global = true, display_order = 900)]
    pub keep_denormals: bool,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Hyper-search: train the model with trainable scales, then extract the scales.
    Hs(TrainArgs),
    /// Extract the scales of a trained hyper-search run into a scales file.
    ExtractScales {
        /// The hyper-search run folder.
        #[arg(long)]
        run: PathBuf,
        /// Output file (default: <run>/scales.safetensors).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train a model: the RepOptimizer on the plain target (default) or a baseline.
    Train(TrainArgs),
    /// Evaluate a trained run on its test split (or on --data).
    Eval(EvalArgs),
    /// The deployed model of a trained run (target: BN folded; RepVGG: fused) as a burnpack,
    /// with a JSON card beside it (architecture, classes, input size, normalisation, accuracy).
    Export {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// The burnpack to write; the card goes to the same name with `.json`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Post-training int8 quantization of a trained run in its deployed form (target: BN
    /// folded; RepVGG: fused), evaluated on the test images for each scheme: weights symmetric
    /// int8 (Burn's Q8F) per output channel or per tensor; activations uint8 at every block
    /// input and the classifier input, their ranges calibrated on training images by min-max or
    /// by percentiles; the first block and the classifier quantized or kept in f32.
    Quantize(QuantizeArgs),
    /// Check GR = CSLA: train a CSLA model with SGD and the equivalent target with the
    /// RepOptimizer on the same batches and print how far their kernels drift apart.
    Verify(crate::verify::VerifyArgs),
    /// Pictures: training curves of runs (`--runs a,b,c`), or the scales of a file (`--scales`).
    Plot {
        /// Run folders whose metrics.csv are drawn as curves.
        #[arg(long, value_delimiter = ',')]
        runs: Vec<PathBuf>,
        /// Legend labels of the runs (default: the folder names). Runs that share a label (the
        /// seeds of one method) are drawn as their mean per epoch over their shaded range.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// A scales file to draw per block instead.
        #[arg(long)]
        scales: Option<PathBuf>,
        /// Draw the per-layer weight SQNR of these `repopt quantize` reports instead.
        #[arg(long, value_delimiter = ',')]
        quantization: Vec<PathBuf>,
        /// Draw the distribution of these runs' deployed 3x3 kernel values instead (each
        /// layer's values over its largest magnitude, as per-tensor int8 sees them).
        #[arg(long, value_delimiter = ',')]
        kernels: Vec<PathBuf>,
        /// Architecture preset (for .pth scales files).
        #[arg(long)]
        preset: Option<String>,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Per-block statistics of a scales file (ours, or an official .pth with --preset).
    InspectScales {
        /// The scales file.
        file: PathBuf,
        /// Architecture preset (needed for .pth files).
        #[arg(long)]
        preset: Option<String>,
        /// Also what the scales imply for the kernels before training: the Grad Mults'
        /// centre and identity emphasis, and the int8 weight SQNR of the re-initialised kernels
        /// beside a freshly fused RepVGG's (random kernels seeded by --seed).
        #[arg(long)]
        kernels: bool,
        /// Seed of the random kernels for --kernels.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

impl Cli {
    /// How much to say on stderr, from -v and -q.
    pub fn verbosity(&self) -> Verbosity {
        Verbosity::from_flags(self.verbose, self.quiet)
    }

    /// The run folder the command writes or reads, if it has one (for error messages).
    pub fn run_folder(&self) -> Option<PathBuf> {
        match &self.command {
            Command::Hs(args) | Command::Train(args) => args
                .resolve()
                .map(|c| c.out)
                .ok()
                .or_else(|| Some(args.flags.out.clone())),
            Command::ExtractScales { run, .. } => Some(run.clone()),
            Command::Eval(args) => Some(args.run.clone()),
            Command::Quantize(args) => Some(args.run.clone()),
            Command::Export { run, .. } => Some(run.clone()),
            _ => None,
        }
    }
}

/// Settings a run resumed with `--resume DIR` may take from the command line instead of its
/// run.json: they change where and how fast it computes, not what.
const RESUME_MAY_CHANGE: [&str; 5] = [
    "workers",
    "device",
    "conv",
    "gradient_checkpointing",
    "cache_images",
];

/// Settings of `hs` and `train`: every [`RunConfig`] field as a flag (its doc comments are the
/// help), and where the settings not given come from: `--config FILE`, or the run folder of
/// `--resume DIR`, then [`RunConfig::default`].
#[derive(Debug, Clone)]
pub struct TrainArgs {
    /// The flags' values, defaults where a flag was not given.
    pub flags: RunConfig,
    /// The [`RunConfig`] fields given on the command line.
    pub given: BTreeSet<String>,
    /// Where the other settings come from.
    pub sources: SettingSources,
}

/// `--config` and `--resume`: where the settings not given as flags come from.
#[derive(Args, Debug, Clone, Default)]
pub struct SettingSources {
    /// JSON file with any of the settings (keys as the flags, with `_`); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue a run from its last checkpoint: `--resume` continues --out; `--resume DIR`
    /// continues the run folder DIR with the settings of its run.json (flags given again must
    /// agree with them, except --workers, --device, --conv, --gradient-checkpointing and
    /// --cache-images).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "DIR")]
    pub resume: Option<String>,
}

impl Args for TrainArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        SettingSources::augment_args(RunConfig::augment_args(command))
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for TrainArgs {
    fn from_arg_matches(matches: &ArgMatches) -> std::result::Result<Self, clap::Error> {
        let given = matches
            .ids()
            .map(|id| id.as_str())
            .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
            .map(str::to_owned)
            .collect();
        Ok(Self {
            flags: RunConfig::from_arg_matches(matches)?,
            given,
            sources: SettingSources::from_arg_matches(matches)?,
        })
    }

    fn update_from_arg_matches(
        &mut self,
        matches: &ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl TrainArgs {
    /// The settings of `args` (as `repopt train ARGS` reads them).
    pub fn parse_from<I, T>(args: I) -> std::result::Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = Self::augment_args(clap::Command::new("train").no_binary_name(true));
        Self::from_arg_matches(&command.try_get_matches_from(args)?)
    }

    /// Whether `--<field>` was given on the command line.
    pub fn gave(&self, field: &str) -> bool {
        self.given.contains(field)
    }

    /// Defaults, then the --config file (or the run.json of `--resume DIR`), then the flags.
    pub fn resolve(&self) -> Result<RunConfig> {
        let folder = match self.sources.resume.as_deref() {
            None | Some("true") | Some("false") => None,
            Some(dir) => Some(PathBuf::from(dir)),
        };
        let base = match (&folder, &self.sources.config) {
            (Some(_), Some(_)) => {
                return Err(TrainError::Config(
                    "--resume DIR takes the settings of DIR/run.json; drop --config".into(),
                ));
            }
            (Some(dir), None) => run_folder::load_run_config(dir)?,
            (None, Some(path)) => RunConfig::load(path)?,
            (None, None) => RunConfig::default(),
        };
        let mut config = self.merge_flags(&base, folder.is_some())?;
        let chose_architecture = ["preset", "num_blocks", "width"]
            .iter()
            .any(|flag| self.gave(flag))
            || base.preset != RunConfig::default().preset
            || base.num_blocks.is_some()
            || base.width.is_some();
        config.adopt_scales_architecture(chose_architecture)?;
        // RepOpt-GhostNet's own default preset, where none was chosen.
        if config.model == crate::config::ModelKind::Ghostnet
            && !self.gave("preset")
            && base.preset == RunConfig::default().preset
        {
            config.preset = crate::config::GHOSTNET_DEFAULT_PRESET.into();
        }
        match (&folder, self.sources.resume.as_deref()) {
            (Some(dir), _) => {
                config.out = dir.clone();
                config.resume = true;
            }
            (None, Some(flag)) => config.resume = flag == "true",
            (None, None) => {}
        }
        Ok(config)
    }

    /// `base` with the flags given on the command line put over it; with `resumed`, a flag
    /// that changes what the recorded run computes is refused.
    fn merge_flags(&self, base: &RunConfig, resumed: bool) -> Result<RunConfig> {
        let mut merged = serde_json::to_value(base).expect("serializable");
        let flags = serde_json::to_value(&self.flags).expect("serializable");
        if let (Some(merged), Some(flags)) = (merged.as_object_mut(), flags.as_object()) {
            // `resume` is `--resume [DIR]`, set by `resolve` after the merge: the flag says how
            // this command continues, whatever the recorded run was started with.
            let given = flags
                .iter()
                .filter(|(key, _)| self.gave(key) && key.as_str() != "resume");
            for (key, value) in given {
                let recorded = merged.insert(key.clone(), value.clone());
                if resumed
                    && !RESUME_MAY_CHANGE.contains(&key.as_str())
                    && recorded.as_ref() != Some(value)
                {
                    return Err(TrainError::Config(format!(
                        "--{} {value} differs from the {} the run was started with \
                         (its run.json); a resumed run keeps its settings",
                        key.replace('_', "-"),
                        recorded.unwrap_or(serde_json::Value::Null)
                    )));
                }
            }
        }
        serde_json::from_value(merged).map_err(|e| TrainError::Config(e.to_string()))
    }
}

/// Settings of `eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Another data folder of the same format and classes.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Evaluate on a random subset of this many images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Device (cpu, wgpu, cuda:N).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Evaluate the checkpoint of the epoch with the best test top-1 (kept beside the last
    /// two) instead of the final model.
    #[arg(long, conflicts_with = "epoch")]
    pub best: bool,
    /// Evaluate the checkpoint of this epoch (numbered from 1; a run keeps the last two and
    /// the best) instead of the final model.
    #[arg(long)]
    pub epoch: Option<usize>,
    /// Before evaluating, re-estimate every BatchNorm's running mean and variance as the
    /// average of their batch statistics over this many training batches (augmented as in
    /// training, the run's batch size), the weights unchanged.
    #[arg(long, value_name = "BATCHES", value_parser = clap::value_parser!(u64).range(1..))]
    pub recalibrate_bn: Option<u64>,
    /// With --recalibrate-bn: fold the batch statistics in as training does,
    /// `r ← (1 − M)·r + M·b` from the model's own statistics, instead of averaging them
    /// (Burn's and PyTorch's training momentum is 0.1).
    #[arg(long, value_name = "M", requires = "recalibrate_bn", value_parser = unit_momentum)]
    pub recalibrate_momentum: Option<f64>,
    /// With --recalibrate-bn: re-estimate only these BatchNorms, numbered from 1 in forward
    /// order (e.g. 9-21 or 1-8,22); the others keep the statistics the model holds.
    #[arg(long, value_name = "LIST", requires = "recalibrate_bn")]
    pub recalibrate_only: Option<crate::recalibrate::BatchNormSelection>,
    /// Also write the evaluated model (the chosen checkpoint, its BatchNorm statistics
    /// re-estimated when asked) as a new run folder DIR: the run's run.json, the model as
    /// model.bpk and derived.json (where it came from, its evaluation), for `eval`, `export`
    /// and `quantize`. DIR must be new or empty.
    #[arg(long, value_name = "DIR")]
    pub save_run: Option<PathBuf>,
}

/// A momentum in (0, 1].
fn unit_momentum(text: &str) -> std::result::Result<f64, String> {
    match text.parse::<f64>() {
        Ok(m) if m > 0.0 && m <= 1.0 => Ok(m),
        _ => Err(format!("{text}: a momentum is a number in (0, 1]")),
    }
}

/// Settings of `quantize`; each list flag takes several values, and every combination is
/// evaluated.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// Training images the activation ranges are calibrated on (no augmentation).
    #[arg(long, default_value_t = 1000)]
    pub calibration_images: usize,
    /// Weight scales: per-channel (one per output channel), per-tensor (one per layer).
    #[arg(long, value_delimiter = ',', default_value = "per-channel,per-tensor", value_parser = ["per-channel", "per-tensor"])]
    pub weights: Vec<String>,
    /// Activation ranges: minmax (smallest and largest value seen), percentile (see
    /// --percentile); or f32: activations not quantized (int8 weights only, to tell the two
    /// sources of error apart).
    #[arg(long, value_delimiter = ',', default_value = "minmax,percentile", value_parser = ["minmax", "percentile", "f32"])]
    pub activations: Vec<String>,
    /// The percentile of the percentile calibration (its low end: 100 − p).
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// The first block and the classifier: int8 (quantized like the rest) or f32 (kept).
    #[arg(long, value_delimiter = ',', default_value = "int8,f32", value_parser = ["int8", "f32"])]
    pub first_last: Vec<String>,
    /// Evaluate on a random subset of this many test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Also evaluate each layer's int8 weights alone (the other layers and the activations in
    /// f32), for every --weights granularity: which layers a drop comes from. One evaluation
    /// per layer and granularity.
    #[arg(long)]
    pub per_layer: bool,
    /// Device (cpu, wgpu, cuda:N).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where the JSON report goes [default: <run>/quantization.json].
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs the command line, its results to stdout.
pub fn main_with(cli: Cli) -> Result<()> {
    if cli.threads == Some(0) {
        return Err(TrainError::Config("--threads must be at least 1".into()));
    }
    let denormals = match cli.keep_denormals {
        true => Denormals::Keep,
        false => Denormals::Flush,
    };
    compute_pool(cli.threads, denormals)
        .map_err(|e| {
            let threads = cli.threads.map_or("(default)".into(), |n| n.to_string());
            TrainError::Config(format!("--threads {threads}: {e}"))
        })?
        .install(|| crate::commands::run(cli.command, &mut std::io::stdout()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Method, ModelKind};

    fn resolve(args: &[&str]) -> RunConfig {
        TrainArgs::parse_from(args).unwrap().resolve().unwrap()
    }

    #[test]
    fn no_flags_give_the_defaults() {
        let parsed = TrainArgs::parse_from::<_, &str>([]).unwrap();
        assert!(parsed.given.is_empty(), "{:?}", parsed.given);
        assert_eq!(parsed.flags, RunConfig::default());
        assert_eq!(parsed.resolve().unwrap(), RunConfig::default());
    }

    #[test]
    fn resume_dir_continues_a_run_that_was_itself_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let recorded = RunConfig {
            resume: true,
            epochs: 7,
            ..RunConfig::default()
        };
        let record = crate::RunRecord {
            architecture: recorded.architecture(10, 3).unwrap(),
            config: recorded,
        };
        let text = serde_json::to_string(&record).unwrap();
        std::fs::write(dir.path().join("run.json"), text).unwrap();
        let folder = dir.path().to_str().unwrap();
        let config = resolve(&["--resume", folder]);
        assert!(config.resume);
        assert_eq!((config.epochs, config.out.as_path()), (7, dir.path()));
        let refused = TrainArgs::parse_from(["--resume", folder, "--epochs", "8"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(refused.contains("--epochs 8"), "{refused}");
    }

    #[test]
    fn every_setting_has_a_flag_of_its_name() {
        let command = TrainArgs::augment_args(clap::Command::new("train"));
        let flags: BTreeSet<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
            .collect();
        let settings = serde_json::to_value(RunConfig::default()).unwrap();
        for key in settings.as_object().unwrap().keys() {
            // `resume` is `--resume [DIR]`, which also says where the settings come from.
            assert!(flags.contains(key), "no --{key}");
        }
    }

    #[test]
    fn flags_override_the_config_file_and_only_given_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.json");
        std::fs::write(&file, r#"{"lr": 0.4, "epochs": 7, "drop_last": false}"#).unwrap();
        let config = resolve(&["--config", file.to_str().unwrap(), "--epochs", "3"]);
        assert_eq!(
            (config.lr, config.epochs, config.drop_last),
            (0.4, 3, false)
        );
        // A flag given with its default value still overrides the file.
        let config = resolve(&["--config", file.to_str().unwrap(), "--lr", "0.1"]);
        assert_eq!((config.lr, config.epochs), (0.1, 7));
        let config = resolve(&["--drop-last", "--nesterov", "false", "--width", "1,2,3,4"]);
        assert!(config.drop_last && !config.nesterov);
        assert_eq!(config.width, Some([1.0, 2.0, 3.0, 4.0]));
    }

    #[test]
    fn stage_lists_need_four_values() {
        let error = TrainArgs::parse_from(["--num-blocks", "1,2,3"]).unwrap_err();
        assert!(error.to_string().contains("needs 4"), "{error}");
        assert!(TrainArgs::parse_from(["--width", "1,x,1,1"]).is_err());
    }

    #[test]
    fn ghostnet_takes_its_own_default_preset() {
        let config = resolve(&["--model", "ghostnet"]);
        assert_eq!(config.model, ModelKind::Ghostnet);
        assert_eq!(config.preset, crate::config::GHOSTNET_DEFAULT_PRESET);
        assert_eq!(
            resolve(&["--model", "ghostnet", "--preset", "1_0x"]).preset,
            "1_0x"
        );
        assert_eq!(resolve(&["--method", "plain"]).method, Method::Plain);
    }

    #[test]
    fn a_scales_file_brings_its_architecture() {
        let dir = tempfile::tempdir().unwrap();
        let save = |name: &str, config: &repopt_models::RepOptVggConfig| {
            let path = dir.path().join(name);
            repopt_models::VggScales::constant(config, 0.5)
                .save(&path)
                .unwrap();
            path.to_str().unwrap().to_owned()
        };
        let tiny = repopt_models::RepOptVggConfig::preset("tiny").unwrap();
        let file = save("tiny.safetensors", &tiny);
        let config = resolve(&["--scales", &file]);
        assert_eq!((config.preset.as_str(), config.num_blocks), ("tiny", None));
        // A preset that agrees is accepted; one that does not is refused, naming the flag.
        assert_eq!(
            resolve(&["--scales", &file, "--preset", "tiny"]).preset,
            "tiny"
        );
        let refused = TrainArgs::parse_from(["--scales", &file, "--preset", "a0"])
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("--preset a0") && refused.contains("tiny.safetensors"),
            "{refused}"
        );
        // No preset has these stages: they become explicit overrides.
        let custom = repopt_models::RepOptVggConfig::new([1, 2, 1, 1], [0.25; 4]);
        let file = save("custom.safetensors", &custom);
        let config = resolve(&["--scales", &file]);
        assert_eq!(config.num_blocks, Some([1, 2, 1, 1]));
        assert_eq!(config.width, Some([0.25; 4]));
        // Methods without scales leave the architecture alone.
        assert_eq!(
            resolve(&["--method", "plain", "--scales", &file]).num_blocks,
            None
        );
    }
}
