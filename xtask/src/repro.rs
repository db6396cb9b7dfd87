//! `cargo xtask repro`: the paper's comparison on CIFAR-10, resumable over several sittings.
//!
//! Protocol (the full version):
//! * data: all 50,000 CIFAR-10 training images; evaluation on the 10,000 test images, which no
//!   decision reads (fixed epoch counts, the last epoch's model and scales are the ones used);
//! * model: A0's depth (2, 4, 14, 1 blocks: 22 layers) at widths (0.25, 0.25, 0.25, 0.5);
//! * hyper-search on the training images (the official code searches on another set,
//!   CIFAR-100, then trains on ImageNet; here both are CIFAR-10's training images, and the test
//!   images stay apart), global-norm clipping 5.0 as the official search command;
//! * methods (one seed = one initialisation seed, data order and augmentation stream shared by
//!   every method of that seed): RepOpt-VGG, plain SGD, RepVGG, RepOptimizer with all scales 1,
//!   re-initialisation only, Grad Mults only;
//! * convergence, two measures: each run's test top-1 gained over its last 10 % of epochs (a
//!   plateau below 0.3 points), and what twice the epochs change (RepOpt-VGG, plain SGD and
//!   RepVGG of seed 0 trained again on `--long-epochs`, and again on twice that, up to
//!   `--doublings` times, for as long as the last doubling changed their top-1 by 0.5 points
//!   or more); once the check has found a budget that doubling no longer changes, the whole
//!   matrix trains on it too (`repro/converged.rs`).
//!
//! Every run lives in its own folder under `--out`; a finished one (`outcome.json`) is never
//! repeated, an unfinished one continues from its last checkpoint.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::stats;

mod collapses;
mod converged;
mod dips;
mod export;
mod mirror;
mod queue;
mod schedule;

use queue::Queue;

/// Settings of a reproduction (`cargo xtask repro`).
#[derive(clap::Args, Debug, Clone)]
pub struct Repro {
    /// A few hundred steps per method on 8,000 images; fails unless every method learns.
    #[arg(long)]
    pub quick: bool,
    /// The CIFAR-10 JPEG archive or its extracted folder [default: ../shared/data/cifar10-jpg.tar.gz].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Folder of the runs (kept between sittings).
    #[arg(long, default_value = "runs/repro")]
    pub out: PathBuf,
    /// Seeds per method [default: 3; 1 with --quick]; more than a folder's plan adds seeds to it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: Option<u64>,
    /// Training epochs per method [default: 40, the protocol of docs/results.md; 2 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Hyper-search epochs [default: 20; 1 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub hs_epochs: Option<u64>,
    /// Epochs of the convergence check: RepOpt-VGG, plain SGD and RepVGG of seed 0 trained
    /// again on this longer schedule; 0 for none [default: twice --epochs; 0 with --quick].
    #[arg(long)]
    pub long_epochs: Option<u64>,
    /// Longest convergence check: a method of the check trains again on twice its longest
    /// schedule while the last lengthening changed its top-1 by 0.5 points or more, up to this
    /// many longer schedules (`--long-epochs` × 1, 2, 4, …) [default: 2; 0 with --quick]; more
    /// than a folder's plan lengthens its check. Once every method of the check has converged
    /// (a doubling changed it by less), every method and seed trains on that budget too.
    #[arg(long)]
    pub doublings: Option<u64>,
    /// Train the matrix on this schedule (one of the check's: --long-epochs × 1, 2, 4, …)
    /// without waiting for the check's verdict, e.g. when a method's check is still lengthening
    /// and its verdict would come too late; the check goes on, and the report says whether its
    /// criterion holds there. Kept in plan.json; a larger one replaces it.
    #[arg(long, value_name = "EPOCHS")]
    pub budget: Option<u64>,
    /// Copy the table (as results-table.md), results.json and pictures (NAME.png as
    /// results-NAME.png) into docs/.
    #[arg(long)]
    pub docs: bool,
    /// Print what is done and what remains, with an estimate of the time left; runs nothing.
    #[arg(long)]
    pub status: bool,
    /// Write the report (and with --docs copy it) from the runs finished so far; trains
    /// nothing, so it can run beside a reproduction under way.
    #[arg(long)]
    pub report_only: bool,
    /// Copy what another machine needs to continue the reproduction into this folder and
    /// train nothing: the plan, every run's settings, outcome, metrics and log, and each
    /// unfinished run's metric logs and newest checkpoint (no trained models). Continue with
    /// `--out` at a copy of that folder.
    #[arg(long, value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// While training, export into this folder as --export does, every --mirror-minutes and
    /// once when the training stops, so that a sitting's progress survives a machine that keeps
    /// nothing between sittings (e.g. the repository's results folder, committed at the end).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["export", "status", "report_only"])]
    pub mirror: Option<PathBuf>,
    /// Minutes between the exports of --mirror.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub mirror_minutes: u64,
    /// Runs trained at the same time, each computing on its share of the cores (`repopt
    /// --threads`, at least one). One training process keeps about 1.2 of 2 cores busy; two
    /// side by side train ≈ 1.8× as many images per second.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: u64,
    /// Cargo profile the `repopt` binary is built with (`dev` reuses the test build).
    #[arg(long, default_value = "release")]
    pub profile: String,
    /// A `repopt` binary to train with instead of building one (e.g. a copy kept beside the
    /// runs, so that later builds of the workspace cannot change a reproduction under way).
    #[arg(long)]
    pub repopt: Option<PathBuf>,
}

/// The methods compared, with their descriptions.
pub const METHODS: [(&str, &str); 6] = [
    (
        "repopt",
        "RepOpt-VGG (target + RepOptimizer, searched scales)",
    ),
    ("plain", "target + plain SGD"),
    ("repvgg", "RepVGG (three branches, fused for evaluation)"),
    ("repopt-ones", "target + RepOptimizer, all scales 1"),
    (
        "reinit-only",
        "ablation: Rule of Initialization only (plain SGD)",
    ),
    (
        "mults-only",
        "ablation: Grad Mults only (ordinary initialisation)",
    ),
];

/// Top-1 (%) each method must reach in the quick version. Chance is 10 %; on its 1,000 test
/// images a model at chance scores above 15 % with probability below 1e-6 (binomial, σ ≈ 0.95
/// points), while a run that learns reaches 20–35 %.
const LEARNED_TOP1: f64 = 15.0;

/// Gain of test top-1 (points) over the last 10 % of epochs below which a run counts as converged.
pub const PLATEAU_POINTS: f64 = 0.3;

/// Change of seed 0's test top-1 (points, either way) when its epochs are doubled below which
/// the plan's budget counts as converged: under a cosine schedule to 0 the last epochs always
/// gain something, so this, not the late gain, says whether more epochs would change the
/// comparison. 0.5 points is about the smallest seed-to-seed spread of a method here.
pub const DOUBLING_POINTS: f64 = 0.5;

/// The settings every run of a plan shares.
#[derive(Debug, Clone)]
struct Plan {
    quick: bool,
    seeds: u64,
    epochs: u64,
    hs_epochs: u64,
    long_epochs: u64,
    /// Longer schedules of the convergence check at most (`long_epochs` × 2^(k−1), k = 1…).
    doublings: u64,
    /// The converged matrix's schedule set by hand (`--budget`), instead of the check's.
    budget_epochs: Option<u64>,
    out: PathBuf,
}

/// The methods trained again on the longer schedule of the convergence check.
pub const LONG_METHODS: [&str; 3] = ["repopt", "plain", "repvgg"];

/// The methods of the convergence check (the two differences the claim rests on) and the
/// others, each in [`METHODS`] order.
fn method_groups() -> (Vec<&'static str>, Vec<&'static str>) {
    METHODS
        .iter()
        .map(|(method, _)| *method)
        .partition(|method| LONG_METHODS.contains(method))
}

impl Plan {
    /// The plan of `r`: flags first, then the plan recorded in `--out` by an earlier sitting,
    /// then the defaults. A flag that contradicts the recorded plan is an error (the runs under
    /// way would otherwise mix two settings), except more `--seeds`, which add seeds to it.
    fn new(r: &Repro) -> Result<Self, String> {
        let recorded = Self::recorded(&r.out)?;
        let pick = |name: &str, given: Option<u64>, full: u64, quick: u64| {
            let old = recorded.as_ref().and_then(|v| v[name].as_u64());
            match (given, old) {
                (Some(n), Some(o)) if n != o => Err(format!(
                    "--{} {n} contradicts the {o} of the reproduction in {} (its plan.json); \
                     continue without the flag or choose another --out",
                    name.replace('_', "-"),
                    r.out.display()
                )),
                (Some(n), _) | (None, Some(n)) => Ok(n),
                (None, None) => Ok(if r.quick { quick } else { full }),
            }
        };
        if let Some(quick) = recorded.as_ref().and_then(|v| v["quick"].as_bool())
            && quick != r.quick
        {
            return Err(format!(
                "{} holds a reproduction with --quick {quick}; choose another --out",
                r.out.display()
            ));
        }
        // More seeds or doublings than recorded extend the matrix or the convergence check:
        // the runs done keep their meaning.
        let grow = |name: &str, given: Option<u64>, full: u64, quick: u64| match given
            .filter(|&n| recorded.as_ref().and_then(|v| v[name].as_u64()) < Some(n))
        {
            Some(n) => Ok(n),
            None => pick(name, given, full, quick),
        };
        let epochs = pick("epochs", r.epochs, 40, 2)?;
        let recorded_budget = recorded.as_ref().and_then(|v| v["budget"].as_u64());
        if let (Some(given), Some(old)) = (r.budget, recorded_budget)
            && given < old
        {
            return Err(format!(
                "--budget {given} is shorter than the {old} of the reproduction in {} (its \
                 plan.json); only a longer one replaces it",
                r.out.display()
            ));
        }
        let plan = Self {
            quick: r.quick,
            seeds: grow("seeds", r.seeds, 3, 1)?,
            epochs,
            hs_epochs: pick("hs_epochs", r.hs_epochs, 20, 1)?,
            long_epochs: pick("long_epochs", r.long_epochs, 2 * epochs, 0)?,
            doublings: grow("doublings", r.doublings, 2, 0)?,
            budget_epochs: r.budget.max(recorded_budget),
            out: r.out.clone(),
        };
        plan.check_budget()?;
        Ok(plan)
    }

    /// A budget set by hand must be one of the check's schedules, whose seed-0 runs are the
    /// check's own.
    fn check_budget(&self) -> Result<(), String> {
        let Some(budget) = self.budget_epochs else {
            return Ok(());
        };
        let schedules: Vec<u64> = (1..=self.doublings).map(|k| self.check_epochs(k)).collect();
        if self.long_epochs > 0 && schedules.contains(&budget) {
            return Ok(());
        }
        let allowed: Vec<String> = schedules.iter().map(u64::to_string).collect();
        Err(format!(
            "--budget {budget}: not one of the convergence check's schedules ({}); a larger \
             --doublings adds longer ones",
            match allowed.is_empty() {
                true => "the plan has no check".to_string(),
                false => allowed.join(", "),
            }
        ))
    }

    fn record_path(out: &Path) -> PathBuf {
        out.join("plan.json")
    }

    fn recorded(out: &Path) -> Result<Option<serde_json::Value>, String> {
        let path = Self::record_path(out);
        if !path.is_file() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the plan into `--out`, for later sittings and `--status`.
    fn record(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.out).map_err(|e| format!("{}: {e}", self.out.display()))?;
        let value = serde_json::json!({
            "quick": self.quick, "seeds": self.seeds, "epochs": self.epochs,
            "hs_epochs": self.hs_epochs, "long_epochs": self.long_epochs,
            "doublings": self.doublings, "budget": self.budget_epochs,
        });
        crate::write_text(
            &Self::record_path(&self.out),
            &serde_json::to_string_pretty(&value).expect("json"),
        )
    }

    /// Flags shared by the hyper-search and every training run. One loader worker: with two,
    /// batches reach the model in the order the workers finish them, so the methods of a seed
    /// would share their batches but not their order, and no run would be bit-reproducible; one
    /// keeps up with training here (the decoded images are kept in memory), measured no slower.
    fn common(&self, data: &str) -> Vec<String> {
        // The quick version takes more, smaller steps so that every method leaves chance.
        let (warmup, batch, lr) = match self.quick {
            true => ("0.5", "64", "0.05"),
            false => ("2", "128", "0.1"),
        };
        let mut args: Vec<String> = [
            "--data",
            data,
            "--normalize",
            "cifar10",
            "--preset",
            "a0",
            "--width",
            "0.25,0.25,0.25,0.5",
            "--batch-size",
            batch,
            "--lr",
            lr,
            "--weight-decay",
            "5e-4",
            "--warmup-epochs",
            warmup,
            "--label-smoothing",
            "0",
            "--workers",
            "1",
        ]
        .map(String::from)
        .to_vec();
        if self.quick {
            args.extend(["--train-limit", "8000", "--test-limit", "1000"].map(String::from));
        }
        args
    }

    fn hs_dir(&self) -> PathBuf {
        self.out.join("hs")
    }

    fn run_dir(&self, method: &str, seed: u64) -> PathBuf {
        self.out.join(format!("{method}-s{seed}"))
    }

    /// Every run in the order they are trained, so that a matrix stopped part way answers the
    /// main questions first: the search; RepOpt-VGG, plain SGD and RepVGG seed by seed (the two
    /// differences the claim rests on); the convergence check's first longer schedule; the
    /// other methods seed by seed; then the further longer schedules that the finished checks
    /// call for ([`Plan::calls_for`]), so the plan grows as checks finish; then the matrix on
    /// the converged budget once the checks have found one ([`converged`]); last, once the
    /// budget is decided, the unfinished longer schedules of the methods whose check collapsed,
    /// which the budget does not wait for.
    fn runs(&self) -> Vec<Run> {
        let mut runs = vec![Run {
            method: "hs".into(),
            seed: 0,
            dir: self.hs_dir(),
            epochs: self.hs_epochs,
            check: 0,
            converged: false,
        }];
        let (main, others) = method_groups();
        runs.extend(self.seed_by_seed(&main));
        if self.long_epochs > 0 && self.doublings > 0 {
            runs.extend(LONG_METHODS.iter().map(|method| self.check_run(method, 1)));
        }
        runs.extend(self.seed_by_seed(&others));
        let collapsed = self.collapsed_checks();
        let longer = |methods: &[&str]| -> Vec<Run> {
            (2..=self.doublings)
                .flat_map(|check| {
                    methods
                        .iter()
                        .filter(move |method| self.calls_for(method, check) == Some(true))
                        .map(move |method| self.check_run(method, check))
                })
                .collect()
        };
        let (stable, unstable): (Vec<&str>, Vec<&str>) = LONG_METHODS
            .iter()
            .partition(|method| !collapsed.contains(method));
        let (unstable_done, unstable_waiting): (Vec<Run>, Vec<Run>) =
            longer(&unstable).into_iter().partition(Run::finished);
        runs.extend(longer(&stable));
        runs.extend(unstable_done);
        extend_unplanned(&mut runs, self.converged_runs());
        if self.matrix_check().is_some() || self.budget() != converged::Budget::Undecided {
            extend_unplanned(&mut runs, unstable_waiting);
        }
        runs
    }

    /// Seed 0 of `method` on the convergence check's `check`-th longer schedule
    /// (`long_epochs` × 2^(check−1)); the first keeps the folder `<method>-long`.
    fn check_run(&self, method: &str, check: u64) -> Run {
        let epochs = self.check_epochs(check);
        let name = match check {
            1 => format!("{method}-long"),
            _ => format!("{method}-long-{epochs}"),
        };
        Run {
            method: method.into(),
            seed: 0,
            dir: self.out.join(name),
            epochs,
            check,
            converged: false,
        }
    }

    /// Epochs of seed 0 on the `check`-th schedule (0: the plan's own).
    fn check_epochs(&self, check: u64) -> u64 {
        match check {
            0 => self.epochs,
            k => self.long_epochs << (k - 1),
        }
    }

    /// The folder of seed 0 of `method` on the `check`-th schedule (0: the plan's own).
    fn check_dir(&self, method: &str, check: u64) -> PathBuf {
        match check {
            0 => self.run_dir(method, 0),
            k => self.check_run(method, k).dir,
        }
    }

    /// Whether the `check`-th longer schedule (≥ 2) of `method` is to be trained: `Some(true)`
    /// when the one before changed seed 0's top-1 by [`DOUBLING_POINTS`] or more, `Some(false)`
    /// when by less (converged), `None` while either of the two is unfinished.
    fn calls_for(&self, method: &str, check: u64) -> Option<bool> {
        let gain = self.check_top1(method, check - 1)? - self.check_top1(method, check - 2)?;
        Some(gain.abs() >= DOUBLING_POINTS)
    }

    /// Whether the finished run of seed 0 of `method` on the `check`-th schedule collapsed
    /// ([`collapses`]); false while unfinished or without a training curve.
    fn check_collapsed(&self, method: &str, check: u64) -> bool {
        let dir = self.check_dir(method, check);
        read_outcome(&dir).is_ok()
            && metric_curve(&dir, "train_top1")
                .is_ok_and(|curve| !collapses::collapses(&curve).is_empty())
    }

    /// Test top-1 of seed 0 of `method` on the `check`-th schedule, once finished.
    fn check_top1(&self, method: &str, check: u64) -> Option<f64> {
        read_outcome(&self.check_dir(method, check))
            .ok()
            .map(|o| o.top1)
    }

    /// `(seed, method)` for every seed of the plan and each of `methods`, seed by seed.
    fn seed_by_seed_pairs<'a>(
        &self,
        methods: &'a [&'a str],
    ) -> impl Iterator<Item = (u64, &'a str)> + 'a {
        (0..self.seeds).flat_map(move |seed| methods.iter().map(move |method| (seed, *method)))
    }

    /// The runs of `methods` on the plan's schedule, seed by seed.
    fn seed_by_seed(&self, methods: &[&str]) -> Vec<Run> {
        self.seed_by_seed_pairs(methods)
            .map(|(seed, method)| Run {
                method: method.into(),
                seed,
                dir: self.run_dir(method, seed),
                epochs: self.epochs,
                check: 0,
                converged: false,
            })
            .collect()
    }
}

/// Appends the runs of `more` whose folders `runs` does not name yet.
fn extend_unplanned(runs: &mut Vec<Run>, more: Vec<Run>) {
    let planned: std::collections::HashSet<PathBuf> = runs.iter().map(|r| r.dir.clone()).collect();
    runs.extend(more.into_iter().filter(|r| !planned.contains(&r.dir)));
}

/// One training run of the plan.
#[derive(Debug, Clone)]
struct Run {
    method: String,
    seed: u64,
    dir: PathBuf,
    epochs: u64,
    /// Which longer schedule of the convergence check (1, 2, …); 0 for the plan's own.
    check: u64,
    /// Part of the matrix at the converged budget ([`converged`]).
    converged: bool,
}

impl Run {
    /// Claims the run for this process (`<run folder>.lock` holding its pid); `false` when a
    /// live process holds it (another sitting is training it).
    fn claim(&self) -> Result<bool, String> {
        let lock = self.dir.with_extension("lock");
        if let Ok(pid) = std::fs::read_to_string(&lock) {
            if Path::new("/proc").join(pid.trim()).exists() {
                return Ok(false);
            }
            std::fs::remove_file(&lock).map_err(|e| format!("{}: {e}", lock.display()))?;
        }
        if let Some(parent) = lock.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(mut file) => {
                use std::io::Write;
                write!(file, "{}", std::process::id()).map_err(|e| e.to_string())?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(format!("{}: {e}", lock.display())),
        }
    }

    fn release(&self) {
        let _ = std::fs::remove_file(self.dir.with_extension("lock"));
    }

    /// The name in tables: the method, with its epochs when on a longer schedule.
    fn label(&self) -> String {
        match self.check == 0 && !self.converged {
            true => self.method.clone(),
            false => format!("{} ({} epochs)", self.method, self.epochs),
        }
    }

    fn finished(&self) -> bool {
        self.dir.join("outcome.json").is_file()
    }

    /// Epochs with a checkpoint (`checkpoint/model-N.bpk`): the run continues after them.
    fn epochs_done(&self) -> u64 {
        if self.finished() {
            return self.epochs;
        }
        model_checkpoints(&self.dir.join("checkpoint"))
            .max()
            .unwrap_or(0)
    }

    /// Whether the run trains with the searched scales (and so waits for the search).
    fn needs_scales(&self) -> bool {
        matches!(
            self.method.as_str(),
            "repopt" | "reinit-only" | "mults-only"
        )
    }

    fn args(&self, plan: &Plan, data: &str, scales: &str) -> Vec<String> {
        let mut args: Vec<String> = match self.method.as_str() {
            "hs" => vec!["hs".into(), "--clip-grad-norm".into(), "5".into()],
            method => vec!["train".into(), "--method".into(), method.into()],
        };
        args.extend(plan.common(data));
        args.extend(["--epochs".into(), self.epochs.to_string()]);
        args.extend(["--seed".into(), self.seed.to_string()]);
        if self.needs_scales() {
            args.extend(["--scales".into(), scales.into()]);
        }
        args.extend(["--out".into(), self.dir.display().to_string()]);
        if self.epochs_done() > 0 {
            args.push("--resume".into());
        }
        args
    }
}

/// The epochs of the model checkpoints (`model-N.bpk`) in `dir`; none when it does not exist.
fn model_checkpoints(dir: &Path) -> impl Iterator<Item = u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("model-")?
                .strip_suffix(".bpk")?
                .parse::<u64>()
                .ok()
        })
}

/// A finished run: method, seed, folder.
pub type RunFolder = (String, u64, PathBuf);

/// The converged budget of the reproduction in `out` and the finished runs of its matrix, seed
/// by seed; an error while there is none.
pub fn finished_converged(out: &Path) -> Result<(u64, Vec<RunFolder>), String> {
    let quick = Plan::recorded(out)?
        .ok_or_else(|| format!("{}: no reproduction (plan.json) here", out.display()))?["quick"]
        .as_bool()
        .unwrap_or(false);
    let plan = Plan::new(&Repro::of_folder(out, quick))?;
    let epochs = plan.converged_epochs().ok_or_else(|| {
        format!(
            "{}: {}",
            out.display(),
            converged::budget_line(&plan).trim_end()
        )
    })?;
    let mut runs: Vec<RunFolder> = plan
        .converged_runs()
        .into_iter()
        .filter(Run::finished)
        .map(|r| (r.method, r.seed, r.dir))
        .collect();
    runs.sort_by_key(|(_, seed, _)| *seed);
    Ok((epochs, runs))
}

impl Repro {
    /// The settings that read the plan recorded in `out` and change nothing.
    fn of_folder(out: &Path, quick: bool) -> Self {
        Self {
            quick,
            data: None,
            out: out.to_path_buf(),
            seeds: None,
            epochs: None,
            hs_epochs: None,
            long_epochs: None,
            doublings: None,
            budget: None,
            docs: false,
            status: false,
            report_only: false,
            export: None,
            mirror: None,
            mirror_minutes: 30,
            jobs: 1,
            profile: "release".into(),
            repopt: None,
        }
    }
}

/// `cargo xtask repro`.
pub fn repro(settings: &Repro) -> Result<(), String> {
    let plan = Plan::new(settings)?;
    if settings.status {
        return status(&plan);
    }
    if let Some(dest) = &settings.export {
        return export::export(&plan, dest);
    }
    if settings.report_only {
        let repopt = match &settings.repopt {
            Some(path) => path.clone(),
            None => crate::binary("repopt-train", "repopt", &settings.profile)?,
        };
        return report(&plan, settings.docs, &repopt);
    }
    plan.record()?;
    let data = cifar10(settings)?;
    let data = data
        .to_str()
        .ok_or("the data path is not UTF-8")?
        .to_string();
    let repopt = match &settings.repopt {
        Some(path) => path.clone(),
        None => crate::binary("repopt-train", "repopt", &settings.profile)?,
    };
    let train = || train_planned(&plan, settings.jobs, &data, &repopt);
    match &settings.mirror {
        Some(dest) => {
            export::check_destination(&plan, dest)?;
            let every = std::time::Duration::from_secs(60 * settings.mirror_minutes);
            mirror::mirrored(&plan, dest, every, train)?;
        }
        None => train()?,
    }
    report(&plan, settings.docs, &repopt)
}

/// Trains every run `plan` names with `jobs` workers; the first failure stops the hand-out. A
/// finished convergence check can call for a longer schedule: the queue plans again whenever
/// it runs dry, so a free worker takes such a run while the others still train.
fn train_planned(plan: &Plan, jobs: u64, data: &str, repopt: &Path) -> Result<(), String> {
    let queue = Queue::new(plan, jobs as usize);
    let threads = threads_per_job(jobs);
    let scales = plan.hs_dir().join("scales.safetensors");
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some(run) = queue.next(&scales) {
                    let result = match run.claim() {
                        Ok(true) => {
                            let result = train(&run, plan, data, &scales, repopt, threads);
                            run.release();
                            result
                        }
                        Ok(false) => {
                            println!(
                                "== {} seed {}: trained by another process",
                                run.label(),
                                run.seed
                            );
                            Ok(())
                        }
                        Err(e) => Err(e),
                    };
                    queue.done(&run, result);
                }
            });
        }
    });
    queue.result()
}

/// The cores of this machine shared among `jobs` runs side by side, at least one each.
fn threads_per_job(jobs: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / jobs.max(1) as usize).max(1)
}

/// Trains `run` (continuing it if it has checkpoints) on `threads` compute threads, its output
/// in `<run folder>.log`.
fn train(
    run: &Run,
    plan: &Plan,
    data: &str,
    scales: &Path,
    repopt: &Path,
    threads: usize,
) -> Result<(), String> {
    let log_path = run.dir.with_extension("log");
    println!(
        "== {} seed {}: {} of {} epochs done; log {}",
        run.label(),
        run.seed,
        run.epochs_done(),
        run.epochs,
        log_path.display()
    );
    if let Some(parent) = log_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut command = Command::new(repopt);
    command
        .args(["--threads".to_string(), threads.to_string()])
        .args(run.args(plan, data, &scales.display().to_string()))
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(err);
    crate::run(command).map_err(|e| format!("{e}; see {}", log_path.display()))?;
    println!("== {} seed {} finished", run.label(), run.seed);
    if !plan.quick && crate::ptq::studies(&run.method) {
        quantize(run, repopt, log, &log_path);
    }
    Ok(())
}

/// The int8 reports of a finished run of the study, made while its model is on this machine
/// (no export keeps models): every scheme (`quantization.json`), then int8 weights alone, whole
/// and layer by layer ([`WEIGHTS_ONLY_REPORT`](crate::ptq::WEIGHTS_ONLY_REPORT)). Their output
/// goes to the run's log; a failure is reported and leaves the run finished (`cargo xtask ptq`
/// makes the first report later).
fn quantize(run: &Run, repopt: &Path, log: std::fs::File, log_path: &Path) {
    let images = crate::ptq::CALIBRATION_IMAGES;
    let reports = [
        (
            "int8 report",
            crate::ptq::quantize_command(repopt, &run.dir, images),
        ),
        (
            "int8 weights-only report",
            crate::ptq::weights_only_command(repopt, &run.dir, images),
        ),
    ];
    for (what, mut command) in reports {
        let quantized = log.try_clone().map_err(|e| e.to_string()).and_then(|out| {
            let err = log.try_clone().map_err(|e| e.to_string())?;
            command.stdout(out).stderr(err);
            crate::run(command)
        });
        match quantized {
            Ok(()) => println!("== {} seed {}: {what} written", run.label(), run.seed),
            Err(e) => println!(
                "== {} seed {}: warning: no {what} ({e}; see {})",
                run.label(),
                run.seed,
                log_path.display()
            ),
        }
    }
}

/// What is done and what remains, with the time left estimated from the finished epochs.
fn status(plan: &Plan) -> Result<(), String> {
    let runs = plan.runs();
    let mut estimates = Estimates::new(plan);
    // Seconds each unfinished run still needs: runs under way, then the rest in the plan's order.
    let (mut started, mut fresh) = (Vec::new(), Vec::new());
    println!(
        "{:<26} {:>4} {:>9} {:>10}  folder",
        "method", "seed", "epochs", "s/epoch"
    );
    for run in &runs {
        let done = run.epochs_done();
        // A finished run shows what its epochs took, the others the rate they are counted at.
        let per_epoch = match run.finished() {
            true => median_epoch_seconds(&run.dir),
            false => estimates.rate(&run.method),
        };
        if !run.finished() {
            let left = estimates.seconds_left(run);
            match done {
                0 => fresh.push(left),
                _ => started.push(left),
            }
        }
        println!(
            "{:<26} {:>4} {:>4}/{:<4} {:>10}  {}{}",
            run.label(),
            run.seed,
            done,
            run.epochs,
            per_epoch.map_or("?".into(), |s| format!("{s:.0}")),
            run.dir.display(),
            if run.finished() { "  done" } else { "" }
        );
    }
    for line in undecided_checks(plan) {
        println!("{line}");
    }
    print!("{}", converged::budget_line(plan));
    let finished = runs.iter().filter(|r| r.finished()).count();
    println!("\n{finished} of {} runs finished", runs.len());
    // At most one run under way per job; any more wait first in line.
    let busy: Vec<f64> = started.drain(..started.len().min(STATUS_JOBS)).collect();
    started.extend(fresh);
    let left = schedule::time_left(&busy, &started, STATUS_JOBS);
    if left.is_nan() {
        println!("time left: unknown until a run has trained an epoch");
    } else {
        println!(
            "time left: about {:.1} h on this machine with --jobs {STATUS_JOBS} (from the seconds \
             per epoch measured so far; each run takes the job that frees first, in the plan's \
             order but for a long run moved ahead so as not to end alone)",
            left / 3600.0
        );
    }
    Ok(())
}

/// The jobs `--status` counts with.
const STATUS_JOBS: usize = 2;

/// The seconds runs still need, from each method's measured rate ([`seconds_per_epoch`],
/// read once); a method not yet measured counts at the mean rate of those measured.
struct Estimates<'a> {
    plan: &'a Plan,
    rates: std::collections::HashMap<String, Option<f64>>,
}

impl<'a> Estimates<'a> {
    fn new(plan: &'a Plan) -> Self {
        Self {
            plan,
            rates: Default::default(),
        }
    }

    /// Seconds per epoch of `method`, if measured.
    fn rate(&mut self, method: &str) -> Option<f64> {
        let plan = self.plan;
        *(self.rates.entry(method.to_string())).or_insert_with(|| seconds_per_epoch(plan, method))
    }

    /// Seconds `run` still needs; `NaN` while no method has a measured rate.
    fn seconds_left(&mut self, run: &Run) -> f64 {
        let per_epoch = self.rate(&run.method).or_else(|| self.fallback());
        run.epochs.saturating_sub(run.epochs_done()) as f64 * per_epoch.unwrap_or(f64::NAN)
    }

    /// The mean rate of the methods measured.
    fn fallback(&mut self) -> Option<f64> {
        let measured: Vec<f64> = std::iter::once("hs")
            .chain(METHODS.iter().map(|(method, _)| *method))
            .filter_map(|method| self.rate(method))
            .collect();
        (!measured.is_empty()).then(|| stats::mean(&measured))
    }
}

/// The longer schedules of the convergence check not yet known to be needed: for each method,
/// the next one, which waits on the check before it.
fn undecided_checks(plan: &Plan) -> Vec<String> {
    LONG_METHODS
        .iter()
        .filter_map(|method| {
            let check = (2..=plan.doublings).find(|&k| plan.calls_for(method, k) != Some(true))?;
            plan.calls_for(method, check).is_none().then(|| {
                format!(
                    "{method} ({} epochs): trained only if {} epochs change seed 0's top-1 by \
                     {DOUBLING_POINTS} points or more against {}",
                    plan.check_epochs(check),
                    plan.check_epochs(check - 1),
                    plan.check_epochs(check - 2),
                )
            })
        })
        .collect()
}

/// Seconds per epoch of `method` (training and evaluation) now: the median of the last
/// [`RECENT_EPOCHS`] epochs in the most recently written log of the runs that train its
/// network (any method, seed or schedule; see [`network`]), so that the estimate follows a
/// faster build or a busier machine even for a method not run since. The median, because an
/// epoch during which the run was paused lasts many times the others.
fn seconds_per_epoch(plan: &Plan, method: &str) -> Option<f64> {
    let newest = plan
        .runs()
        .into_iter()
        .filter(|r| network(&r.method) == network(method))
        .filter_map(|r| {
            let log = r.dir.with_extension("log");
            let written = std::fs::metadata(&log).and_then(|m| m.modified()).ok()?;
            Some((written, r.dir))
        })
        .max_by_key(|(written, _)| *written)?;
    let seconds = logged_epoch_seconds(&newest.1);
    median(&seconds[seconds.len().saturating_sub(RECENT_EPOCHS)..])
}

/// The network a method trains, which sets its cost per epoch: the search's three branches
/// with trainable scales, RepVGG's three branches, or the plain target, whatever its update
/// rule (the Grad Mults' one multiply per weight is within the noise of an epoch).
fn network(method: &str) -> &str {
    match method {
        "hs" | "repvgg" => method,
        _ => "target",
    }
}

/// Epochs the time-left estimate reads per method.
const RECENT_EPOCHS: usize = 10;

/// The seconds of each finished epoch in the log beside the run folder `dir` (none without a log).
fn logged_epoch_seconds(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.with_extension("log"))
        .map(|log| epoch_seconds(&log))
        .unwrap_or_default()
}

fn median(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| stats::median(values))
}

/// Seconds of each finished epoch (training plus evaluation) in a run's log, whose lines read
/// `epoch k/n train (X s): …` and `epoch k/n valid (Y s): …`; an epoch counts once both are there.
fn epoch_seconds(log: &str) -> Vec<f64> {
    let mut train = std::collections::BTreeMap::<String, f64>::new();
    let mut both = Vec::new();
    for line in log.lines().filter_map(|l| l.strip_prefix("epoch ")) {
        let Some((epoch, rest)) = line.split_once(' ') else {
            continue;
        };
        let seconds = rest
            .split_once(" (")
            .and_then(|(_, rest)| rest.split_once(" s)"))
            .and_then(|(s, _)| s.parse::<f64>().ok());
        match (
            rest.starts_with("train ("),
            rest.starts_with("valid ("),
            seconds,
        ) {
            (true, _, Some(s)) => {
                train.insert(epoch.to_string(), s);
            }
            (_, true, Some(s)) => both.extend(train.remove(epoch).map(|t| t + s)),
            _ => {}
        }
    }
    both
}

/// What one finished run reports.
#[derive(Debug, Clone)]
struct Outcome {
    top1: f64,
    seconds_per_epoch: f64,
    peak_memory_mib: Option<f64>,
}

fn read_outcome(dir: &Path) -> Result<Outcome, String> {
    let path = dir.join("outcome.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Outcome {
        top1: value["test"]["top1"]
            .as_f64()
            .ok_or_else(|| format!("{}: no test top-1", path.display()))?,
        seconds_per_epoch: median_epoch_seconds(dir)
            .or(value["seconds_per_epoch"].as_f64())
            .unwrap_or(f64::NAN),
        peak_memory_mib: value["peak_memory_bytes"]
            .as_f64()
            .map(|b| b / f64::from(1 << 20)),
    })
}

/// The median seconds per epoch of the run in `dir`, from its log (`None` without one). The
/// run's own mean (`outcome.json`) counts the time it was paused.
fn median_epoch_seconds(dir: &Path) -> Option<f64> {
    median(&logged_epoch_seconds(dir))
}

/// The per-epoch test top-1 of a run (`valid_top1` of its metrics.csv), in epoch order.
fn test_curve(dir: &Path) -> Result<Vec<f64>, String> {
    metric_curve(dir, "valid_top1")
}

/// Column `name` of a run's metrics.csv (`train_top1`, `valid_top1`, …), in epoch order.
fn metric_curve(dir: &Path, name: &str) -> Result<Vec<f64>, String> {
    let path = dir.join("metrics.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = header
        .iter()
        .position(|c| *c == name)
        .ok_or_else(|| format!("{}: no {name} column", path.display()))?;
    lines
        .map(|line| {
            line.split(',')
                .nth(column)
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("{}: bad row `{line}`", path.display()))
        })
        .collect()
}

/// The gain of `curve` over its last 10 % of epochs (at least one epoch): the last value minus
/// the value before that window.
pub fn late_gain(curve: &[f64]) -> Option<f64> {
    let window = (curve.len() / 10).max(1);
    (curve.len() > window).then(|| curve[curve.len() - 1] - curve[curve.len() - 1 - window])
}

/// The table of the convergence check: seed 0 of each method of the check on the plan's
/// schedule and on every longer one finished, the change each lengthening made, and whether
/// the budget criterion holds: some lengthening changed top-1 by less than [`DOUBLING_POINTS`].
fn convergence_check(plan: &Plan) -> String {
    let schedules: Vec<u64> = (0..=plan.doublings).map(|k| plan.check_epochs(k)).collect();
    let mut out = format!(
        "\nConvergence check, seed 0: the same run on longer schedules (top-1 %, in brackets the \
         change from the schedule before)\n\n| method |{} last-10 % gain of the longest |\n|---|{}---|\n",
        schedules
            .iter()
            .map(|e| format!(" {e} epochs |"))
            .collect::<String>(),
        "---|".repeat(schedules.len()),
    );
    let mut verdicts = Vec::new();
    let collapsed = plan.collapsed_checks();
    for method in LONG_METHODS {
        let top1: Vec<Option<f64>> = (0..=plan.doublings)
            .map(|k| plan.check_top1(method, k))
            .collect();
        let Some(longest) = (1..top1.len()).rev().find(|&k| top1[k].is_some()) else {
            continue;
        };
        let cells: String = (0..top1.len())
            .map(
                |k| match (top1[k], k.checked_sub(1).and_then(|j| top1[j])) {
                    (Some(t), Some(before)) => format!(" {t:.2} ({:+.2}) |", t - before),
                    (Some(t), None) => format!(" {t:.2} |"),
                    (None, _) => " – |".into(),
                },
            )
            .collect();
        let late = test_curve(&plan.check_dir(method, longest as u64))
            .ok()
            .and_then(|curve| late_gain(&curve))
            .map_or("?".to_string(), |g| format!("{g:+.2}"));
        out.push_str(&format!("| {method} |{cells} {late} |\n"));
        let mut verdict = budget_verdict(method, &schedules, &top1);
        if collapsed.contains(&method) {
            verdict.insert_str(
                verdict.len() - 1,
                "; a run of the deciding doubling collapsed: left out of the budget",
            );
        }
        verdicts.push(verdict);
    }
    if verdicts.is_empty() {
        return String::new();
    }
    out.push_str(&format!(
        "\nBudget criterion (a lengthening changes seed 0's top-1 by less than {DOUBLING_POINTS} \
         points):\n\n{}\n{}",
        verdicts.concat(),
        converged::budget_line(plan)
    ));
    out
}

/// One line of the budget criterion for `method`: the first schedule whose doubling changed
/// top-1 by less than [`DOUBLING_POINTS`], or that none has yet.
fn budget_verdict(method: &str, schedules: &[u64], top1: &[Option<f64>]) -> String {
    let gains: Vec<(usize, f64)> = (1..top1.len())
        .filter_map(|k| Some((k, top1[k]? - top1[k - 1]?)))
        .collect();
    let met = gains.iter().find(|(_, g)| g.abs() < DOUBLING_POINTS);
    match (met, gains.last()) {
        (Some((k, g)), _) => format!(
            "* {method}: met at {} epochs ({} epochs change it by {g:+.2})\n",
            schedules[k - 1],
            schedules[*k]
        ),
        (None, Some((k, g))) => format!(
            "* {method}: NOT met up to {} epochs (the last lengthening: {g:+.2})\n",
            schedules[*k]
        ),
        (None, None) => format!("* {method}: not known yet\n"),
    }
}

/// One finished run in the report.
struct Finished {
    method: String,
    seed: u64,
    outcome: Outcome,
    curve: Vec<f64>,
}

/// The runs of the plan's own matrix (every method and seed on its schedule).
fn plan_matrix(plan: &Plan) -> Vec<Run> {
    plan.runs()
        .into_iter()
        .filter(|r| r.method != "hs" && r.check == 0 && !r.converged)
        .collect()
}

/// The finished runs among `runs`, with their outcomes and curves.
fn collect(runs: Vec<Run>) -> Result<Vec<Finished>, String> {
    let mut all = Vec::new();
    for run in runs.into_iter().filter(Run::finished) {
        all.push(Finished {
            outcome: read_outcome(&run.dir)?,
            curve: test_curve(&run.dir)?,
            method: run.method,
            seed: run.seed,
        });
    }
    Ok(all)
}

/// Top-1 of every finished run of `method`.
fn top1(runs: &[Finished], method: &str) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.method == method)
        .map(|r| r.outcome.top1)
        .collect()
}

/// The table, results.json and pictures of the finished plan (and copies in docs/).
fn report(plan: &Plan, docs: bool, repopt: &Path) -> Result<(), String> {
    let runs = collect(plan_matrix(plan))?;
    let (mut table, failures) = method_table(plan, &runs);
    let planned = plan_matrix(plan).len();
    if runs.len() < planned {
        table.insert_str(
            0,
            &format!(
                "Partial report: {} of {planned} runs finished.\n\n",
                runs.len()
            ),
        );
    }
    let (differences_md, differences) = differences_table(&runs);
    table.push_str(&differences_md);
    table.push_str(&plateau_line(&runs));
    table.push_str(&convergence_check(plan));
    let (collapses_md, collapses_json) = collapses::section(plan);
    table.push_str(&collapses_md);
    let (dips_md, dips_json) = dips::section(plan);
    table.push_str(&dips_md);
    let (converged_md, converged_json) = converged::section(plan, &collect(plan.converged_runs())?);
    table.push_str(&converged_md);
    table.push_str(&scales_section(plan, repopt)?);
    let out = &plan.out;
    let summary = out.join("results.md");
    crate::write_text(&summary, &table)?;
    let json = out.join("results.json");
    crate::write_text(
        &json,
        &results_json(
            plan,
            &runs,
            differences,
            converged_json,
            [collapses_json, dips_json],
        ),
    )?;
    let pngs = pictures(plan, repopt)?;
    println!("\n{table}");
    for png in &pngs {
        println!("picture {}", png.display());
    }
    if docs {
        copy_to_docs(Path::new("docs"), &summary, &json, &pngs)?;
    }
    if !failures.is_empty() {
        return Err(format!(
            "methods that did not learn (chance is 10 %): {}",
            failures.join("; ")
        ));
    }
    Ok(())
}

/// Per method: top-1 mean ± sample std, seeds, range, the largest late gain, time per epoch and
/// peak memory; and, in the quick version, the methods that stayed near chance.
fn method_table(plan: &Plan, runs: &[Finished]) -> (String, Vec<String>) {
    let mut table = String::from(
        "| method | top-1 (%) mean ± std | seeds | min – max | last-10 % gain (max) | s / epoch | peak memory (MiB) |\n|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for (method, description) in METHODS {
        let mine: Vec<&Finished> = runs.iter().filter(|r| r.method == method).collect();
        let values = top1(runs, method);
        if values.is_empty() {
            table.push_str(&format!("| {description} | – | 0 | – | – | – | – |\n"));
            continue;
        }
        let max_gain = mine
            .iter()
            .filter_map(|r| late_gain(&r.curve))
            .fold(f64::NEG_INFINITY, f64::max);
        let seconds: Vec<f64> = mine.iter().map(|r| r.outcome.seconds_per_epoch).collect();
        let memory = mine
            .iter()
            .filter_map(|r| r.outcome.peak_memory_mib)
            .fold(0.0, f64::max);
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        table.push_str(&format!(
            "| {description} | {:.2} ± {:.2} | {} | {lo:.2} – {hi:.2} | {max_gain:+.2} | {:.1} | {memory:.0} |\n",
            stats::mean(&values),
            stats::std(&values),
            values.len(),
            stats::mean(&seconds),
        ));
        if plan.quick && values.iter().any(|&v| v < LEARNED_TOP1) {
            failures.push(format!("{method}: top-1 {values:?}"));
        }
    }
    (table, failures)
}

/// RepOpt-VGG minus each other method: Welch's 95 % interval over the seeds, and the paired one
/// over the seeds both have (a seed shares data order and, where possible, initial weights), as a
/// table and as JSON.
fn differences_table(runs: &[Finished]) -> (String, Vec<serde_json::Value>) {
    let mut table = String::from(
        "\n| difference | estimate (points) | 95 % CI (Welch) | df | 95 % CI (paired by seed) | pairs |\n\
         |---|---|---|---|---|---|\n",
    );
    let repopt = top1(runs, "repopt");
    let mut json = Vec::new();
    for (other, _) in METHODS.iter().skip(1) {
        let Some(d) = stats::welch(&repopt, &top1(runs, other)) else {
            continue;
        };
        let pairs = seed_pairs(runs, "repopt", other);
        let paired = stats::paired(&pairs);
        let paired_cell =
            paired.map_or("–".into(), |p| format!("[{:+.2}, {:+.2}]", p.low, p.high));
        table.push_str(&format!(
            "| RepOpt − {other} | {:+.2} | [{:+.2}, {:+.2}] | {:.1} | {paired_cell} | {} |\n",
            d.estimate,
            d.low,
            d.high,
            d.df,
            pairs.len()
        ));
        json.push(serde_json::json!({
            "minus": other, "estimate": d.estimate, "ci95": [d.low, d.high], "df": d.df,
            "paired_ci95": paired.map(|p| [p.low, p.high]), "pairs": pairs.len(),
        }));
    }
    (table, json)
}

/// `(a, b)` top-1 of the seeds where both `a` and `b` have finished.
fn seed_pairs(runs: &[Finished], a: &str, b: &str) -> Vec<(f64, f64)> {
    let of = |method: &str, seed: u64| {
        runs.iter()
            .find(|r| r.method == method && r.seed == seed)
            .map(|r| r.outcome.top1)
    };
    let mut seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds
        .into_iter()
        .filter_map(|seed| Some((of(a, seed)?, of(b, seed)?)))
        .collect()
}

/// Whether every run met the plateau criterion, and which did not.
fn plateau_line(runs: &[Finished]) -> String {
    let unconverged: Vec<String> = runs
        .iter()
        .filter(|r| late_gain(&r.curve).is_some_and(|g| g >= PLATEAU_POINTS))
        .map(|r| format!("{} seed {}", r.method, r.seed))
        .collect();
    format!(
        "\nConvergence (test top-1 gain over the last 10 % of epochs < {PLATEAU_POINTS} points): {}\n",
        if unconverged.is_empty() {
            "met by every run".to_string()
        } else {
            format!("NOT met by {}", unconverged.join(", "))
        }
    )
}

/// The scales the search started from and the searched ones, per block (`repopt inspect-scales`).
fn scales_section(plan: &Plan, repopt: &Path) -> Result<String, String> {
    let repopt = std::path::absolute(repopt).map_err(|e| format!("{}: {e}", repopt.display()))?;
    let mut section = String::from("\nScales per block (mean ± std [min, max] over channels)\n");
    for (title, file) in [
        ("initial", "scales-initial.safetensors"),
        ("searched", "scales.safetensors"),
    ] {
        let path = plan.hs_dir().join(file);
        if !path.is_file() {
            continue;
        }
        // Named from the reproduction's folder, so that the report reads the same wherever
        // that folder is.
        let relative = path.strip_prefix(&plan.out).unwrap_or(&path);
        let output = Command::new(&repopt)
            .current_dir(&plan.out)
            .arg("inspect-scales")
            .arg(relative)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", repopt.display()))?;
        section.push_str(&format!(
            "\n{title}:\n\n```text\n{}```\n",
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    Ok(section)
}

/// results.json: the protocol, every run's top-1 and per-epoch curve, and the differences.
/// The converged matrix (`converged`) is its own entry, `null` until the budget is known;
/// `collapses` holds every finished run's training collapses ([`collapses`]) and its
/// test-top-1 dips ([`dips`]), in that order.
fn results_json(
    plan: &Plan,
    runs: &[Finished],
    differences: Vec<serde_json::Value>,
    converged: Option<serde_json::Value>,
    [collapses, dips]: [serde_json::Value; 2],
) -> String {
    let long: Vec<serde_json::Value> = plan
        .runs()
        .iter()
        .filter(|r| r.check > 0)
        .filter_map(|r| {
            let outcome = read_outcome(&r.dir).ok()?;
            Some(serde_json::json!({
                "method": r.method, "seed": 0, "epochs": r.epochs, "top1": outcome.top1,
                "test_top1_per_epoch": test_curve(&r.dir).ok(),
            }))
        })
        .collect();
    let document = serde_json::json!({
        "protocol": {
            "data": if plan.quick { "8,000 CIFAR-10 training images, 1,000 test images" }
                    else { "all 50,000 CIFAR-10 training images, the 10,000 test images" },
            "epochs": plan.epochs, "hs_epochs": plan.hs_epochs, "seeds": plan.seeds,
            "long_epochs": plan.long_epochs, "doublings": plan.doublings,
            "flags": plan.common("DATA"),
            "plateau_points": PLATEAU_POINTS,
            "doubling_points": DOUBLING_POINTS,
            "collapse_points": collapses::COLLAPSE_POINTS,
            "dip_points": dips::DIP_POINTS,
        },
        "runs": per_run_json(runs),
        "long_runs": long,
        "differences": differences,
        "converged": converged,
        "collapses": collapses,
        "dips": dips,
    });
    serde_json::to_string_pretty(&document).expect("json")
}

/// Every run's top-1, time, memory and per-epoch curve.
fn per_run_json(runs: &[Finished]) -> Vec<serde_json::Value> {
    runs.iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method, "seed": r.seed, "top1": r.outcome.top1,
                "seconds_per_epoch": r.outcome.seconds_per_epoch,
                "peak_memory_mib": r.outcome.peak_memory_mib,
                "test_top1_per_epoch": r.curve,
            })
        })
        .collect()
}

/// Copies of the report in `docs`: the table as `results-table.md`, `results.json`, and each
/// picture `NAME.png` as `results-NAME.png`.
fn copy_to_docs(docs: &Path, summary: &Path, json: &Path, pngs: &[PathBuf]) -> Result<(), String> {
    let mut copies = vec![
        (summary.to_path_buf(), docs.join("results-table.md")),
        (json.to_path_buf(), docs.join("results.json")),
    ];
    for png in pngs {
        let name = png.file_name().unwrap_or_default().to_string_lossy();
        copies.push((png.clone(), docs.join(format!("results-{name}"))));
    }
    for (from, to) in copies {
        std::fs::copy(&from, &to).map_err(|e| format!("{}: {e}", to.display()))?;
    }
    println!(
        "copied the table, results.json and pictures into {}",
        docs.display()
    );
    Ok(())
}

/// The report's pictures, as PNGs in `--out`: the curves of the finished runs (each method's
/// seeds as their mean and range) as `curves.png`, those of the converged matrix's as
/// `curves-EPOCHS.png` once one of them has finished, and the searched scales as `scales.png`.
fn pictures(plan: &Plan, repopt: &Path) -> Result<Vec<PathBuf>, String> {
    let curves_png = plan.out.join("curves.png");
    let scales_png = plan.out.join("scales.png");
    if !plot_curves(&plan_matrix(plan), &curves_png, repopt)? {
        return Err(format!(
            "no run of the matrix has finished in {}: nothing to report yet",
            plan.out.display()
        ));
    }
    let mut pngs = vec![curves_png];
    if let Some(epochs) = plan.converged_epochs() {
        let png = plan.out.join(format!("curves-{epochs}.png"));
        if plot_curves(&plan.converged_runs(), &png, repopt)? {
            pngs.push(png);
        }
    }
    let mut plot = Command::new(repopt);
    plot.arg("plot")
        .arg("--scales")
        .arg(plan.hs_dir().join("scales.safetensors"))
        .arg("--out")
        .arg(&scales_png);
    crate::run(plot)?;
    pngs.push(scales_png);
    Ok(pngs)
}

/// The curves of the finished runs among `runs` as a PNG at `png`, the seeds of a method drawn
/// as their mean and range; `false` when none has finished (runs under way have no metrics.csv
/// yet).
fn plot_curves(runs: &[Run], png: &Path, repopt: &Path) -> Result<bool, String> {
    let (dirs, labels): (Vec<String>, Vec<&str>) = runs
        .iter()
        .filter(|r| r.dir.join("metrics.csv").is_file())
        .map(|r| (r.dir.display().to_string(), r.method.as_str()))
        .unzip();
    if dirs.is_empty() {
        return Ok(false);
    }
    let mut plot = Command::new(repopt);
    plot.args([
        "plot",
        "--runs",
        &dirs.join(","),
        "--labels",
        &labels.join(","),
    ])
    .arg("--out")
    .arg(png);
    crate::run(plot)?;
    Ok(true)
}

/// `<out>/data/cifar10-jpg` extracted from the shared archive (once), or the folder given.
fn cifar10(repro: &Repro) -> Result<PathBuf, String> {
    let archive = match &repro.data {
        Some(path) if path.is_dir() => return Ok(path.clone()),
        Some(path) => path.clone(),
        None => crate::shared_dir().join("data/cifar10-jpg.tar.gz"),
    };
    let root = repro.out.join("data/cifar10-jpg");
    if root.join("train").is_dir() && root.join("test").is_dir() {
        return Ok(root);
    }
    if !archive.is_file() {
        return Err(format!(
            "CIFAR-10 not found at {}: pass --data with the cifar10-jpg.tar.gz archive or an \
             extracted folder holding train/<class>/ and test/<class>/",
            archive.display()
        ));
    }
    let dest = repro.out.join("data");
    std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    println!("extracting {} into {}", archive.display(), dest.display());
    let mut tar = Command::new("tar");
    tar.arg("-xzf").arg(&archive).arg("-C").arg(&dest);
    crate::run(tar)?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full (not `--quick`) reproduction into `out`: every other setting at its default but
    /// the profile, `dev`.
    pub(super) fn settings(out: impl Into<PathBuf>) -> Repro {
        Repro {
            jobs: 2,
            profile: "dev".into(),
            ..Repro::of_folder(&out.into(), false)
        }
    }

    #[test]
    fn jobs_share_the_cores_at_least_one_thread_each() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(threads_per_job(1), cores);
        assert_eq!(threads_per_job(2), (cores / 2).max(1));
        assert_eq!(threads_per_job(cores as u64 * 4), 1);
    }

    #[test]
    fn late_gain_reads_the_last_tenth() {
        let curve: Vec<f64> = (0..30).map(|e| 50.0 + e as f64).collect();
        assert_eq!(late_gain(&curve), Some(3.0));
        assert_eq!(late_gain(&[10.0, 12.0]), Some(2.0));
        assert_eq!(late_gain(&[10.0]), None);
    }

    #[test]
    fn a_run_with_checkpoints_resumes() {
        let dir = std::env::temp_dir().join(format!("repro-resume-{}", std::process::id()));
        let plan = Plan::new(&Repro {
            quick: true,
            ..settings(&dir)
        })
        .unwrap();
        let run = &plan.runs()[1];
        assert!(!run.args(&plan, "D", "S").contains(&"--resume".to_string()));
        std::fs::create_dir_all(run.dir.join("checkpoint")).unwrap();
        std::fs::write(run.dir.join("checkpoint/model-1.bpk"), b"").unwrap();
        assert_eq!(run.epochs_done(), 1);
        assert!(run.args(&plan, "D", "S").contains(&"--resume".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A stand-in for `repopt` at `dir/repopt` that appends its arguments to `dir/calls` and
    /// fails `repopt quantize` when `quantize_fails`.
    #[cfg(unix)]
    fn fake_repopt(dir: &Path, quantize_fails: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let (script, calls) = (dir.join("repopt"), dir.join("calls"));
        let exit = if quantize_fails { 1 } else { 0 };
        let text = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$1\" = quantize ] && exit {exit}\nexit 0\n",
            calls.display()
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&script, text).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    /// In a full reproduction a finished run of the int8 study (RepOpt-VGG, RepVGG, plain) is
    /// quantized at once, its output in the run's log; other methods and the quick version are
    /// not, and a failed quantization leaves the run trained.
    #[cfg(unix)]
    #[test]
    fn a_finished_run_of_the_study_is_quantized_where_it_trained() {
        let root = std::env::temp_dir().join(format!("repro-int8-{}", std::process::id()));
        let calls = |dir: &Path| std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
        for (quick, quantize_fails) in [(false, false), (false, true), (true, false)] {
            let dir = root.join(format!("{quick}-{quantize_fails}"));
            let repopt = fake_repopt(&dir, quantize_fails);
            let plan = Plan::new(&Repro {
                quick,
                ..settings(dir.join("out"))
            })
            .unwrap();
            let runs = plan.runs();
            for method in ["repopt", "repopt-ones"] {
                let run = runs.iter().find(|r| r.method == method).unwrap();
                train(run, &plan, "D", Path::new("S"), &repopt, 3).unwrap();
            }
            let lines: Vec<String> = calls(&dir).lines().map(String::from).collect();
            let repopt_dir = plan.run_dir("repopt", 0);
            let quantized = format!(
                "quantize --run {} --calibration-images 1000",
                repopt_dir.display()
            );
            let weights_only = format!(
                "{quantized} --activations f32 --first-last int8 --per-layer --json {}",
                repopt_dir.join(crate::ptq::WEIGHTS_ONLY_REPORT).display()
            );
            let expected_calls = if quick { 2 } else { 4 };
            assert_eq!(lines.len(), expected_calls, "{lines:?}");
            assert_eq!(lines.contains(&weights_only), !quick, "{lines:?}");
            assert!(
                lines[0].starts_with("--threads 3 train --method repopt "),
                "{lines:?}"
            );
            assert_eq!(lines.contains(&quantized), !quick, "{lines:?}");
            assert!(
                lines
                    .last()
                    .unwrap()
                    .starts_with("--threads 3 train --method repopt-ones ")
            );
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A later sitting takes the recorded plan; a contradicting flag is refused.
    #[test]
    fn the_plan_is_kept_between_sittings() {
        let dir = std::env::temp_dir().join(format!("repro-plan-{}", std::process::id()));
        let with_epochs = |epochs| Repro {
            epochs,
            ..settings(&dir)
        };
        Plan::new(&with_epochs(Some(12))).unwrap().record().unwrap();
        assert_eq!(Plan::new(&with_epochs(None)).unwrap().epochs, 12);
        assert_eq!(Plan::new(&with_epochs(Some(12))).unwrap().epochs, 12);
        let refused = Plan::new(&with_epochs(Some(13))).unwrap_err();
        assert!(refused.contains("--epochs 13"), "{refused}");
        let with_seeds = |seeds| Repro {
            seeds,
            ..settings(&dir)
        };
        let fewer = Plan::new(&with_seeds(Some(2))).unwrap_err();
        assert!(fewer.contains("--seeds 2"), "{fewer}");
        let more = Plan::new(&with_seeds(Some(5))).unwrap();
        assert_eq!((more.seeds, more.epochs), (5, 12));
        more.record().unwrap();
        assert_eq!(Plan::new(&with_seeds(None)).unwrap().seeds, 5);
        let with_doublings = |doublings| Repro {
            doublings,
            ..settings(&dir)
        };
        assert!(Plan::new(&with_doublings(Some(1))).is_err());
        let longer = Plan::new(&with_doublings(Some(3))).unwrap();
        assert_eq!((longer.doublings, longer.seeds), (3, 5));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every method of the plan, the search first, each seed in turn.
    #[test]
    fn the_plan_covers_every_method_and_seed() {
        let plan = Plan::new(&settings("x")).unwrap();
        let runs = plan.runs();
        assert_eq!(runs.len(), 1 + 3 * METHODS.len() + LONG_METHODS.len());
        assert!(
            runs.iter()
                .filter(|r| r.check > 0)
                .all(|r| r.epochs == 80 && r.seed == 0 && r.check == 1)
        );
        assert_eq!(runs[0].method, "hs");
        // The main comparison of every seed, then the convergence check, then the rest.
        let order: Vec<String> = runs[1..].iter().map(|r| r.label()).collect();
        assert_eq!(
            order[..9],
            ["repopt", "plain", "repvgg"].repeat(3)[..],
            "{order:?}"
        );
        assert_eq!(
            order[9..12],
            [
                "repopt (80 epochs)",
                "plain (80 epochs)",
                "repvgg (80 epochs)"
            ],
            "{order:?}"
        );
        assert_eq!(
            order[12..15],
            ["repopt-ones", "reinit-only", "mults-only"],
            "{order:?}"
        );
        assert!(
            runs[1..10]
                .iter()
                .map(|r| r.seed)
                .eq([0, 0, 0, 1, 1, 1, 2, 2, 2])
        );
        let scaled: Vec<_> = runs
            .iter()
            .filter(|r| r.args(&plan, "D", "S").contains(&"--scales".to_string()))
            .map(|r| r.method.clone())
            .collect();
        assert_eq!(scaled.len(), 10);
        assert!(
            scaled
                .iter()
                .all(|m| ["repopt", "reinit-only", "mults-only"].contains(&m.as_str()))
        );
    }

    /// An epoch counts once its training and evaluation lines are both in the log; a resumed
    /// run's repeated epoch counts once; the median ignores an epoch that lasted through a pause.
    #[test]
    fn epoch_seconds_pair_train_and_valid_lines() {
        let log = "\
epoch 1/4 train (40.0 s): Accuracy 25 %
epoch 1/4 valid (2.0 s): Accuracy 35 %
epoch 2/4 train (2400.0 s): Accuracy 30 %
epoch 2/4 valid (3.0 s): Accuracy 38 %
epoch 3/4 train (41.0 s): Accuracy 31 %
== resumed
epoch 3/4 train (39.0 s): Accuracy 32 %
epoch 3/4 valid (2.0 s): Accuracy 39 %
epoch 4/4 train (44.0 s): Accuracy 33 %
";
        let seconds = epoch_seconds(log);
        assert_eq!(seconds, vec![42.0, 2403.0, 41.0]);
        assert_eq!(stats::median(&seconds), 42.0);
    }

    /// The time-left estimate reads the last epochs of the newest log of the method's network:
    /// a faster build or a busier machine shows at once, also for the methods of the same
    /// network not run since.
    #[test]
    fn the_estimate_follows_the_newest_epochs() {
        let dir = std::env::temp_dir().join(format!("repro-eta-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        let log = |run: &str, seconds: &[f64], age_s: u64| {
            let path = epoch_log(&dir, run, seconds);
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(when).unwrap();
        };
        std::fs::create_dir_all(&dir).unwrap();
        log("repopt-s0", &[60.0; 30], 3600);
        let mut recent = vec![60.0; 20];
        recent.extend([30.0; RECENT_EPOCHS]);
        log("repopt-long", &recent, 10);
        log("repvgg-s0", &[90.0; 30], 7200);
        assert_eq!(seconds_per_epoch(&plan, "repopt"), Some(30.0));
        assert_eq!(seconds_per_epoch(&plan, "mults-only"), Some(30.0));
        assert_eq!(seconds_per_epoch(&plan, "repvgg"), Some(90.0));
        assert_eq!(seconds_per_epoch(&plan, "hs"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writes `run`'s log into `dir` with one epoch per entry of `seconds`, each taking that
    /// long to train; returns the log's path.
    pub(super) fn epoch_log(dir: &Path, run: &str, seconds: &[f64]) -> PathBuf {
        let n = seconds.len();
        let lines: String = (1..=n)
            .zip(seconds)
            .map(|(e, s)| format!("epoch {e}/{n} train ({s} s): x\nepoch {e}/{n} valid (0 s): x\n"))
            .collect();
        let path = dir.join(format!("{run}.log"));
        std::fs::write(&path, lines).unwrap();
        path
    }

    /// Finishes every run of `plan` but those named in `but`.
    pub(super) fn finish_all_but(plan: &Plan, but: &[&str]) {
        for run in plan.runs() {
            if !but.iter().any(|name| run.dir.ends_with(name)) {
                finish(&run.dir, 70.0, run.epochs);
            }
        }
    }

    /// Writes a finished run into `dir`: its outcome and a curve rising by one point an epoch
    /// to `top1`.
    pub(super) fn finish(dir: &Path, top1: f64, epochs: u64) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("outcome.json"),
            format!(r#"{{"test": {{"top1": {top1}}}}}"#),
        )
        .unwrap();
        let rows: String = (1..=epochs)
            .map(|e| format!("{e},{}\n", top1 - (epochs - e) as f64))
            .collect();
        std::fs::write(dir.join("metrics.csv"), format!("epoch,valid_top1\n{rows}")).unwrap();
    }

    /// The settings of [`doubling_plan`].
    pub(super) fn doubling_plan_settings(dir: &Path) -> Repro {
        Repro {
            epochs: Some(10),
            long_epochs: Some(20),
            ..settings(dir)
        }
    }

    /// A plan of 10 epochs, checked on 20 and then 40.
    pub(super) fn doubling_plan(dir: &Path) -> Plan {
        Plan::new(&doubling_plan_settings(dir)).unwrap()
    }

    /// The plan grows by a longer schedule for a method whose last lengthening changed its
    /// top-1 by 0.5 points or more, and only then.
    #[test]
    fn a_check_that_moved_calls_for_a_longer_schedule() {
        let dir = std::env::temp_dir().join(format!("repro-grow-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        assert!(plan.runs().iter().all(|r| r.check < 2));
        assert_eq!(undecided_checks(&plan).len(), LONG_METHODS.len());
        finish(&dir.join("repopt-s0"), 79.0, 10);
        finish(&dir.join("repopt-long"), 80.5, 20);
        finish(&dir.join("plain-s0"), 78.0, 10);
        finish(&dir.join("plain-long"), 78.4, 20);
        let runs = plan.runs();
        let longer: Vec<_> = runs.iter().filter(|r| r.check == 2).collect();
        assert_eq!(longer.len(), 1, "{longer:?}");
        assert_eq!(longer[0].dir, dir.join("repopt-long-40"));
        assert_eq!((longer[0].epochs, longer[0].seed), (40, 0));
        assert_eq!(longer[0].label(), "repopt (40 epochs)");
        assert_eq!(runs.last().unwrap().dir, longer[0].dir);
        let undecided = undecided_checks(&plan);
        assert_eq!(undecided.len(), 1, "{undecided:?}");
        assert!(
            undecided[0].starts_with("repvgg (40 epochs)"),
            "{undecided:?}"
        );
        let capped = Plan {
            doublings: 1,
            ..plan.clone()
        };
        assert!(capped.runs().iter().all(|r| r.check < 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The convergence check lists seed 0 on every finished schedule with the change from the
    /// one before, and says per method where the budget criterion is met.
    #[test]
    fn the_convergence_check_follows_each_lengthening() {
        let dir = std::env::temp_dir().join(format!("repro-long-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        finish(&dir.join("repopt-long"), 80.5, 20);
        finish(&dir.join("repopt-long-40"), 80.8, 40);
        finish(&dir.join("plain-long"), 79.0, 20);
        finish(&dir.join("plain-long-40"), 80.0, 40);
        finish(&dir.join("repopt-s0"), 79.0, 10);
        finish(&dir.join("plain-s0"), 78.0, 10);
        finish(&dir.join("repvgg-s0"), 79.5, 10);
        let table = convergence_check(&plan);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            table.contains("| method | 10 epochs | 20 epochs | 40 epochs | last-10 % gain"),
            "{table}"
        );
        assert!(
            table.contains("| repopt | 79.00 | 80.50 (+1.50) | 80.80 (+0.30) | +4.00 |"),
            "{table}"
        );
        assert!(
            table.contains("| plain | 78.00 | 79.00 (+1.00) | 80.00 (+1.00) | +4.00 |"),
            "{table}"
        );
        assert!(!table.contains("| repvgg |"), "{table}");
        assert!(
            table.contains("* repopt: met at 20 epochs (40 epochs change it by +0.30)"),
            "{table}"
        );
        assert!(
            table.contains("* plain: NOT met up to 40 epochs (the last lengthening: +1.00)"),
            "{table}"
        );
    }

    #[test]
    fn docs_copies_take_results_names() {
        let dir = std::env::temp_dir().join(format!("repro-docs-{}", std::process::id()));
        let (out, docs) = (dir.join("out"), dir.join("docs"));
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&docs).unwrap();
        let names = [
            "results.md",
            "results.json",
            "curves.png",
            "curves-640.png",
            "scales.png",
        ];
        for name in names {
            std::fs::write(out.join(name), name).unwrap();
        }
        let pngs: Vec<PathBuf> = names[2..].iter().map(|n| out.join(n)).collect();
        copy_to_docs(&docs, &out.join(names[0]), &out.join(names[1]), &pngs).unwrap();
        for (copy, from) in [
            ("results-table.md", "results.md"),
            ("results.json", "results.json"),
            ("results-curves.png", "curves.png"),
            ("results-curves-640.png", "curves-640.png"),
            ("results-scales.png", "scales.png"),
        ] {
            assert_eq!(std::fs::read_to_string(docs.join(copy)).unwrap(), from);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
