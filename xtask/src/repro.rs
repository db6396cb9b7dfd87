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

mod collapses;
mod converged;
mod dips;
mod export;
mod mirror;
mod outcome;
mod queue;
mod report;
mod schedule;
mod status;
mod train;

use outcome::{metric_curve, read_outcome};

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
        return status::status(&plan);
    }
    if let Some(dest) = &settings.export {
        return export::export(&plan, dest);
    }
    if settings.report_only {
        let repopt = match &settings.repopt {
            Some(path) => path.clone(),
            None => crate::binary("repopt-train", "repopt", &settings.profile)?,
        };
        return report::report(&plan, settings.docs, &repopt);
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
    let train = || train::train_planned(&plan, settings.jobs, &data, &repopt);
    match &settings.mirror {
        Some(dest) => {
            export::check_destination(&plan, dest)?;
            let every = std::time::Duration::from_secs(60 * settings.mirror_minutes);
            mirror::mirrored(&plan, dest, every, train)?;
        }
        None => train()?,
    }
    report::report(&plan, settings.docs, &repopt)
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
        assert_eq!(status::undecided_checks(&plan).len(), LONG_METHODS.len());
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
        let undecided = status::undecided_checks(&plan);
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
}
