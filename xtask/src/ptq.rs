//! `cargo xtask ptq`: the post-training-quantization study over the reproduction's runs.
//!
//! For every finished run of RepOpt-VGG, RepVGG and the plain model in the reproduction folder,
//! `repopt quantize` evaluates every scheme (kept in the run's `quantization.json`, so a finished
//! run is not quantized again; a run whose model was not kept counts only through such a
//! report); the study then gives FP32 and INT8 top-1 per method and scheme
//! over the seeds, the drop, the per-layer weight SQNR and the kernels' distribution, and per
//! run the drop of int8 weights alone and the layer that loses most alone (the run's
//! `quantization-weights-only.json`, made here for a run that still has its model). With
//! `--converged` the same for the matrix at the budget the convergence check found.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::stats;

/// Settings of `cargo xtask ptq`.
#[derive(clap::Args, Debug, Clone)]
pub struct Ptq {
    /// The reproduction folder (`cargo xtask repro --out`).
    #[arg(long, default_value = "runs/repro")]
    pub repro: PathBuf,
    /// Training images the activation ranges are calibrated on.
    #[arg(long, default_value_t = CALIBRATION_IMAGES)]
    pub calibration_images: u64,
    /// Copy the table, JSON and pictures into docs/ (quantization-*).
    #[arg(long)]
    pub docs: bool,
    /// A `repopt` binary to use instead of building one.
    #[arg(long)]
    pub repopt: Option<PathBuf>,
    /// Study the matrix at the converged budget that the reproduction's convergence check
    /// found (`cargo xtask repro`) instead of its own schedule; the files are named
    /// `quantization-<epochs>ep…` (docs: `quantization-<epochs>ep-…`).
    #[arg(long)]
    pub converged: bool,
}

/// The methods the study compares.
pub const METHODS: [(&str, &str); 3] = [
    ("repopt", "RepOpt-VGG (target, BN folded)"),
    ("repvgg", "RepVGG (fused)"),
    ("plain", "plain target + SGD (BN folded)"),
];

/// Training images the study calibrates on by default (`--calibration-images`).
pub const CALIBRATION_IMAGES: u64 = 1000;

/// Whether the study covers `method`'s runs.
pub fn studies(method: &str) -> bool {
    METHODS.iter().any(|(m, _)| *m == method)
}

/// `repopt quantize --run dir`: every scheme, reported in the run's `quantization.json`.
pub fn quantize_command(repopt: &Path, dir: &Path, calibration_images: u64) -> Command {
    let mut command = Command::new(repopt);
    command
        .arg("quantize")
        .arg("--run")
        .arg(dir)
        .args(["--calibration-images", &calibration_images.to_string()]);
    command
}

/// The run's report of int8 weights alone, whole model and layer by layer.
pub const WEIGHTS_ONLY_REPORT: &str = "quantization-weights-only.json";

/// `repopt quantize` of int8 weights alone (activations in `f32`, first and last layers
/// quantized), whole and one layer at a time (`--per-layer`): which layers a weights-caused
/// drop comes from. Reported in the run's [`WEIGHTS_ONLY_REPORT`].
pub fn weights_only_command(repopt: &Path, dir: &Path, calibration_images: u64) -> Command {
    let mut command = quantize_command(repopt, dir, calibration_images);
    command
        .args([
            "--activations",
            "f32",
            "--first-last",
            "int8",
            "--per-layer",
        ])
        .arg("--json")
        .arg(dir.join(WEIGHTS_ONLY_REPORT));
    command
}

/// `cargo xtask ptq`.
pub fn ptq(settings: &Ptq) -> Result<(), String> {
    let repopt = match &settings.repopt {
        Some(path) => path.clone(),
        None => crate::binary("repopt-train", "repopt", "release")?,
    };
    let (studied, prefix) = match settings.converged {
        false => (finished_runs(&settings.repro), "quantization".to_string()),
        true => {
            let (epochs, runs) = crate::repro::finished_converged(&settings.repro)?;
            let runs = runs
                .into_iter()
                .filter(|(method, _, _)| studies(method))
                .collect();
            (runs, format!("quantization-{epochs}ep"))
        }
    };
    let (runs, left_out) = quantizable(studied);
    for dir in &left_out {
        println!(
            "{}: left out (no model.bpk to quantize and no quantization.json)",
            dir.display()
        );
    }
    if runs.is_empty() {
        return Err(format!(
            "no finished run of {} in {}: run `cargo xtask repro` first",
            METHODS.map(|m| m.0).join(", "),
            settings.repro.display()
        ));
    }
    for (_, _, dir) in &runs {
        if !complete_report(&dir.join("quantization.json")) {
            crate::run(quantize_command(&repopt, dir, settings.calibration_images))?;
        }
        if dir.join("model.bpk").is_file() && !per_layer_report(&dir.join(WEIGHTS_ONLY_REPORT)) {
            crate::run(weights_only_command(
                &repopt,
                dir,
                settings.calibration_images,
            ))?;
        }
    }
    let reports: Vec<(String, u64, serde_json::Value)> = runs
        .iter()
        .map(|(method, seed, dir)| {
            Ok((
                method.clone(),
                *seed,
                read_json(&dir.join("quantization.json"))?,
            ))
        })
        .collect::<Result<_, String>>()?;
    let out = &settings.repro;
    let weights_only: Vec<(String, u64, serde_json::Value)> = runs
        .iter()
        .filter_map(|(method, seed, dir)| {
            let report = read_json(&dir.join(WEIGHTS_ONLY_REPORT)).ok()?;
            Some((method.clone(), *seed, report))
        })
        .collect();
    let table = table(&reports) + &weights_only_table(&weights_only);
    let table_md = out.join(format!("{prefix}.md"));
    crate::write_text(&table_md, &table)?;
    let summary = serde_json::json!({
        "calibration_images": settings.calibration_images,
        "runs": reports.iter().map(|(m, s, r)| serde_json::json!({"method": m, "seed": s, "report": r})).collect::<Vec<_>>(),
    });
    let json = out.join(format!("{prefix}.json"));
    crate::write_text(
        &json,
        &serde_json::to_string_pretty(&summary).expect("json"),
    )?;
    let pictures = pictures(&repopt, &runs, out, &prefix)?;
    println!("\n{table}");
    if settings.docs {
        let mut copies = vec![
            (table_md, format!("docs/{prefix}-table.md")),
            (json.clone(), format!("docs/{prefix}.json")),
        ];
        copies.extend(
            pictures
                .into_iter()
                .zip(["sqnr", "kernels"].map(|p| format!("docs/{prefix}-{p}.png"))),
        );
        for (from, to) in copies {
            std::fs::copy(&from, &to).map_err(|e| format!("{to}: {e}"))?;
        }
        println!("copied the table, JSON and pictures into docs/");
    }
    Ok(())
}

/// `(method, seed, folder)` of every finished run the study covers, seed by seed.
fn finished_runs(repro: &Path) -> Vec<(String, u64, PathBuf)> {
    let mut runs = Vec::new();
    for seed in 0..100u64 {
        for (method, _) in METHODS {
            let dir = repro.join(format!("{method}-s{seed}"));
            if dir.join("outcome.json").is_file() {
                runs.push((method.to_string(), seed, dir));
            }
        }
    }
    runs
}

/// The runs that have a complete report or the model to make one, and the folders of those
/// that have neither (a run whose model was not kept).
fn quantizable(runs: Vec<(String, u64, PathBuf)>) -> (Vec<(String, u64, PathBuf)>, Vec<PathBuf>) {
    let (kept, gone): (Vec<_>, Vec<_>) = runs.into_iter().partition(|(_, _, dir)| {
        complete_report(&dir.join("quantization.json")) || dir.join("model.bpk").is_file()
    });
    (kept, gone.into_iter().map(|(_, _, dir)| dir).collect())
}

/// Whether `path` is a weights-only report with its per-layer study.
fn per_layer_report(path: &Path) -> bool {
    read_json(path).is_ok_and(|r| r["per_layer"].as_array().is_some_and(|l| !l.is_empty()))
}

/// Whether `path` is a report of every scheme (`repopt quantize` with its default lists).
fn complete_report(path: &Path) -> bool {
    read_json(path).is_ok_and(|r| r["schemes"].as_array().is_some_and(|s| s.len() == 8))
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The schemes in the order `repopt quantize` reports them, as a readable key.
fn scheme_key(scheme: &serde_json::Value) -> String {
    let activations = match &scheme["activations"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "f32".to_string(),
        other => other
            .get("percentile")
            .and_then(|p| p.as_f64())
            .map_or_else(|| other.to_string(), |p| format!("percentile {p}")),
    };
    format!(
        "{} weights, {} activations, first/last {}",
        scheme["weights"].as_str().unwrap_or("?"),
        activations,
        if scheme["first_and_last"].as_bool() == Some(true) {
            "int8"
        } else {
            "f32"
        }
    )
}

/// The reports of `method`'s runs.
fn of_method<'a>(
    reports: &'a [(String, u64, serde_json::Value)],
    method: &str,
) -> Vec<&'a serde_json::Value> {
    reports
        .iter()
        .filter(|(m, _, _)| m == method)
        .map(|(_, _, r)| r)
        .collect()
}

/// Per run of `mine`: scheme `key`'s `drop` or INT8 top-1 (`int8`).
fn scheme_values(mine: &[&serde_json::Value], key: &str, field: &str) -> Vec<f64> {
    mine.iter()
        .filter_map(|r| {
            let scheme = r["schemes"]
                .as_array()?
                .iter()
                .find(|s| scheme_key(s) == key)?;
            match field {
                "drop" => scheme["drop"].as_f64(),
                _ => scheme["int8"]["top1"].as_f64(),
            }
        })
        .collect()
}

/// The scheme keys of the reports, in their order.
fn scheme_keys(reports: &[(String, u64, serde_json::Value)]) -> Vec<String> {
    reports
        .first()
        .and_then(|(_, _, r)| r["schemes"].as_array())
        .map(|s| s.iter().map(scheme_key).collect())
        .unwrap_or_default()
}

fn table(reports: &[(String, u64, serde_json::Value)]) -> String {
    let mut out = String::from(
        "| method | scheme | seeds | FP32 top-1 (%) | INT8 top-1 (%) | drop (points) |\n|---|---|---|---|---|---|\n",
    );
    let keys = scheme_keys(reports);
    for (method, description) in METHODS {
        let mine = of_method(reports, method);
        if mine.is_empty() {
            continue;
        }
        let fp32: Vec<f64> = mine
            .iter()
            .filter_map(|r| r["fp32"]["top1"].as_f64())
            .collect();
        for key in &keys {
            let (int8, drop) = (
                scheme_values(&mine, key, "int8"),
                scheme_values(&mine, key, "drop"),
            );
            out.push_str(&format!(
                "| {description} | {key} | {} | {:.2} ± {:.2} | {:.2} ± {:.2} | {:+.2} ± {:.2} |\n",
                mine.len(),
                stats::mean(&fp32),
                stats::std(&fp32),
                stats::mean(&int8),
                stats::std(&int8),
                stats::mean(&drop),
                stats::std(&drop),
            ));
        }
    }
    out.push_str("\nmean ± sample std over seeds; drop = FP32 − INT8 of the same run.\n");
    out.push_str(&drop_differences(reports, &keys));
    out
}

/// Per run with a weights-only report: the drop of int8 weights alone (activations and first
/// and last layers as [`weights_only_command`] sets them) per granularity, and the layer whose
/// weights alone lose most; empty without such reports.
fn weights_only_table(reports: &[(String, u64, serde_json::Value)]) -> String {
    const GRANULARITIES: [&str; 2] = ["per-channel", "per-tensor"];
    if reports.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nInt8 weights alone (activations in f32), and the one layer whose int8 weights alone \
         lose most (the rest in f32):\n\n\
         | method | seed | FP32 top-1 (%) | drop, per channel | drop, per tensor | \
         worst layer, per channel | worst layer, per tensor |\n|---|---|---|---|---|---|---|\n",
    );
    for (method, seed, report) in reports {
        let whole = GRANULARITIES.map(|g| {
            let scheme = report["schemes"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["weights"] == g));
            scheme
                .and_then(|s| s["drop"].as_f64())
                .map_or("–".into(), |d| format!("{d:+.2}"))
        });
        let worst = GRANULARITIES.map(|g| {
            let layers = report["per_layer"].as_array().into_iter().flatten();
            layers
                .filter(|l| l["weights"] == g)
                .filter_map(|l| Some((l["layer"].as_str()?, l["drop"].as_f64()?)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map_or("–".into(), |(layer, d)| format!("{layer} {d:+.2}"))
        });
        out.push_str(&format!(
            "| {method} | {seed} | {:.2} | {} | {} | {} | {} |\n",
            report["fp32"]["top1"].as_f64().unwrap_or(f64::NAN),
            whole[0],
            whole[1],
            worst[0],
            worst[1]
        ));
    }
    out
}

/// Welch's 95 % interval of the difference of drops per scheme: RepVGG − RepOpt-VGG, and
/// RepOpt-VGG − plain.
fn drop_differences(reports: &[(String, u64, serde_json::Value)], keys: &[String]) -> String {
    let mut out = String::from(
        "\n| scheme | RepVGG drop − RepOpt-VGG drop (95 % CI, Welch) | RepOpt-VGG drop − plain drop (95 % CI, Welch) |\n|---|---|---|\n",
    );
    let drops = |method: &str, key: &str| scheme_values(&of_method(reports, method), key, "drop");
    let cell = |a: &[f64], b: &[f64]| {
        stats::welch(a, b).map_or("–".to_string(), |d| {
            format!("{:+.2} [{:+.2}, {:+.2}]", d.estimate, d.low, d.high)
        })
    };
    for key in keys {
        let (repopt, repvgg, plain) = (
            drops("repopt", key),
            drops("repvgg", key),
            drops("plain", key),
        );
        out.push_str(&format!(
            "| {key} | {} | {} |\n",
            cell(&repvgg, &repopt),
            cell(&repopt, &plain)
        ));
    }
    out
}

/// The seed the pictures show: the first whose runs all still have their models (the kernel
/// picture reads them); `None` when no seed has.
fn picture_seed(runs: &[(String, u64, PathBuf)]) -> Option<u64> {
    let mut seeds: Vec<u64> = runs.iter().map(|(_, s, _)| *s).collect();
    seeds.dedup();
    seeds.into_iter().find(|seed| {
        runs.iter()
            .filter(|(_, s, _)| s == seed)
            .all(|(_, _, dir)| dir.join("model.bpk").is_file())
    })
}

/// The SQNR and kernel-distribution pictures of one seed's runs (see [`picture_seed`]), as
/// `<prefix>-sqnr.png` and `<prefix>-kernels.png` in `out`.
fn pictures(
    repopt: &Path,
    runs: &[(String, u64, PathBuf)],
    out: &Path,
    prefix: &str,
) -> Result<Vec<PathBuf>, String> {
    let Some(seed) = picture_seed(runs) else {
        println!("no seed has every run's model: no pictures");
        return Ok(Vec::new());
    };
    let first: Vec<&(String, u64, PathBuf)> = runs.iter().filter(|(_, s, _)| *s == seed).collect();
    let labels: Vec<&str> = first.iter().map(|(m, _, _)| m.as_str()).collect();
    let reports: Vec<String> = first
        .iter()
        .map(|(_, _, d)| d.join("quantization.json").display().to_string())
        .collect();
    let dirs: Vec<String> = first
        .iter()
        .map(|(_, _, d)| d.display().to_string())
        .collect();
    let sqnr = out.join(format!("{prefix}-sqnr.png"));
    let kernels = out.join(format!("{prefix}-kernels.png"));
    for (flag, values, png) in [
        ("--quantization", &reports, &sqnr),
        ("--kernels", &dirs, &kernels),
    ] {
        crate::plot(repopt, flag, values, &labels, png)?;
    }
    Ok(vec![sqnr, kernels])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run folder under `root` with the given files.
    fn run(root: &Path, method: &str, seed: u64, files: &[&str]) -> (String, u64, PathBuf) {
        let dir = root.join(format!("{method}-s{seed}"));
        std::fs::create_dir_all(&dir).unwrap();
        for file in files {
            let text = match *file {
                "quantization.json" => r#"{"schemes": [1, 2, 3, 4, 5, 6, 7, 8]}"#,
                _ => "",
            };
            std::fs::write(dir.join(file), text).unwrap();
        }
        (method.to_string(), seed, dir)
    }

    /// A run without its model is left out unless its report was made while it had one; the
    /// pictures come from the first seed whose runs all have their models.
    #[test]
    fn runs_without_models_are_left_out() {
        let root = std::env::temp_dir().join(format!("ptq-runs-{}", std::process::id()));
        let runs = vec![
            run(&root, "repopt", 0, &["outcome.json", "quantization.json"]),
            run(&root, "plain", 0, &["outcome.json"]),
            run(&root, "repopt", 1, &["outcome.json", "model.bpk"]),
            run(&root, "plain", 1, &["outcome.json", "model.bpk"]),
        ];
        let (kept, gone) = quantizable(runs.clone());
        assert_eq!(
            kept,
            vec![runs[0].clone(), runs[2].clone(), runs[3].clone()]
        );
        assert_eq!(gone, vec![runs[1].2.clone()]);
        assert_eq!(picture_seed(&kept), Some(1));
        assert_eq!(picture_seed(&kept[..1]), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The weights-only table gives each run's whole-model drops and its worst single layer per
    /// granularity; a report without the per-layer study shows dashes there.
    #[test]
    fn weights_only_table_names_the_worst_layer() {
        let report = serde_json::json!({
            "fp32": {"top1": 80.0},
            "schemes": [
                {"weights": "per-channel", "drop": 0.5},
                {"weights": "per-tensor", "drop": 1.25},
            ],
            "per_layer": [
                {"layer": "stage0", "weights": "per-channel", "drop": 0.1},
                {"layer": "stage0", "weights": "per-tensor", "drop": 0.9},
                {"layer": "stage3.6", "weights": "per-channel", "drop": 0.4},
                {"layer": "stage3.6", "weights": "per-tensor", "drop": -0.2},
            ],
        });
        let old = serde_json::json!({
            "fp32": {"top1": 79.0},
            "schemes": [{"weights": "per-channel", "drop": 6.0}],
        });
        let table = weights_only_table(&[("plain".into(), 0, report), ("repopt".into(), 1, old)]);
        assert!(
            table.contains("| plain | 0 | 80.00 | +0.50 | +1.25 | stage3.6 +0.40 | stage0 +0.90 |"),
            "{table}"
        );
        assert!(
            table.contains("| repopt | 1 | 79.00 | +6.00 | – | – | – |"),
            "{table}"
        );
        assert_eq!(weights_only_table(&[]), "");
    }
}
