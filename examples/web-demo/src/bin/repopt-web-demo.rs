//! Native side of the web demo: package a trained run for the page, and build the gallery of
//! real test images with the predictions of the native model, which the browser test checks
//! the page against.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use repopt_models::{BlockMode, RepOptVggConfig};
use repopt_web_demo::{ClassScore, ImageClassifier, ModelCard, Provenance};
use serde::{Deserialize, Serialize};

/// CIFAR normalisation, as the trainer applies it to 32-pixel RGB data.
const CIFAR_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
const CIFAR_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// File names in a packaged model folder.
const CARD: &str = "model.json";
const MODEL: &str = "model.bpk";
/// The gallery index, beside its images.
const GALLERY: &str = "gallery.json";

#[derive(Parser)]
#[command(
    name = "repopt-web-demo",
    about = "Package models and galleries for the web demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Package a `repopt train` run folder (plain target model) as model.bpk + model.json.
    Export {
        /// The run folder (`run.json`, `model.bpk`, `outcome.json`).
        #[arg(long)]
        run: PathBuf,
        /// The data folder it was trained on (class names are its `test/` sub-folders).
        #[arg(long)]
        data: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Name of the data set, for the page (default: the data folder's name).
        #[arg(long)]
        dataset: Option<String>,
        /// Display name (default: blocks per stage and width, e.g. `RepOpt-VGG 2-2-1-1 ×0.25`).
        #[arg(long)]
        name: Option<String>,
        /// A command that produced the model, recorded in the card (repeatable).
        #[arg(long = "command")]
        commands: Vec<String>,
    },
    /// Copy the first images of each test class as PNG and record the native model's top-5.
    Gallery {
        /// A packaged model folder (model.json + model.bpk).
        #[arg(long)]
        model: PathBuf,
        /// A test folder with one sub-folder of images per class.
        #[arg(long)]
        images: PathBuf,
        /// Images per class.
        #[arg(long, default_value_t = 2)]
        per_class: usize,
        /// Output folder for the PNGs and gallery.json.
        #[arg(long)]
        out: PathBuf,
    },
}

/// One gallery image and what the native model says about it.
#[derive(Debug, Serialize, Deserialize)]
struct GalleryImage {
    /// File name inside the gallery folder.
    file: String,
    /// True class.
    label: String,
    /// The native (CPU, flex) model's top-5.
    native_top5: Vec<ClassScore>,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Export {
            run,
            data,
            out,
            dataset,
            name,
            commands,
        } => export(&run, &data, &out, dataset, name, commands),
        Command::Gallery {
            model,
            images,
            per_class,
            out,
        } => gallery(&model, &images, per_class, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn field<'a>(
    value: &'a serde_json::Value,
    pointer: &str,
    file: &Path,
) -> Result<&'a serde_json::Value, String> {
    value
        .pointer(pointer)
        .ok_or_else(|| format!("{}: no `{pointer}`", file.display()))
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("partial");
    fs::write(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// E.g. `RepOpt-VGG 2-2-1-1 ×0.25`: blocks per stage and width multipliers.
fn default_name(architecture: &RepOptVggConfig) -> String {
    let join = |values: Vec<String>| values.join("-");
    let blocks = join(
        architecture
            .num_blocks
            .iter()
            .map(|b| b.to_string())
            .collect(),
    );
    let widths = &architecture.width_multiplier;
    let width = if widths.iter().all(|w| *w == widths[0]) {
        widths[0].to_string()
    } else {
        join(widths.iter().map(|w| w.to_string()).collect())
    };
    format!("RepOpt-VGG {blocks} ×{width}")
}

fn export(
    run: &Path,
    data: &Path,
    out: &Path,
    dataset: Option<String>,
    name: Option<String>,
    commands: Vec<String>,
) -> Result<(), String> {
    let run_file = run.join("run.json");
    let record = read_json(&run_file)?;
    let architecture: RepOptVggConfig =
        serde_json::from_value(field(&record, "/architecture", &run_file)?.clone())
            .map_err(|e| format!("{}: architecture: {e}", run_file.display()))?;
    if architecture.mode != BlockMode::Target {
        return Err(format!(
            "{}: a {:?} model; the demo serves plain target models (methods repopt, repopt-ones, plain)",
            run_file.display(),
            architecture.mode
        ));
    }
    let image_size = field(&record, "/config/image_size", &run_file)?
        .as_u64()
        .unwrap_or(0) as usize;
    if architecture.in_channels != 3 || image_size > 64 {
        return Err(format!(
            "{}: the demo serves small RGB models (CIFAR-style, ≤ 64 px); this one takes {} channels at {image_size} px",
            run_file.display(),
            architecture.in_channels
        ));
    }
    let outcome_file = run.join("outcome.json");
    let outcome = read_json(&outcome_file)?;
    let number = |pointer: &str| -> Result<f64, String> {
        field(&outcome, pointer, &outcome_file)?
            .as_f64()
            .ok_or_else(|| format!("{}: `{pointer}` is not a number", outcome_file.display()))
    };
    let classes: Vec<String> = sorted_dirs(&data.join("test"))?
        .iter()
        .map(|d| file_name(d))
        .collect();
    let card = ModelCard {
        name: name.unwrap_or_else(|| default_name(&architecture)),
        architecture,
        classes,
        image_size,
        mean: CIFAR_MEAN,
        std: CIFAR_STD,
        provenance: Provenance {
            dataset: dataset.unwrap_or_else(|| file_name(data)),
            test_top1: number("/test/top1")?,
            test_top5: number("/test/top5")?,
            test_images: number("/test/samples")? as usize,
            commands,
        },
    };
    let model =
        fs::read(run.join(MODEL)).map_err(|e| format!("{}: {e}", run.join(MODEL).display()))?;
    // Refuse a card that does not describe the weights.
    ImageClassifier::new(card.clone(), model.clone(), &Device::flex())
        .map_err(|e| e.to_string())?;
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    write_atomic(&out.join(MODEL), &model)?;
    let text = serde_json::to_string_pretty(&card).expect("a card serialises");
    write_atomic(&out.join(CARD), text.as_bytes())?;
    println!(
        "packaged {} ({} KiB, test top-1 {:.2} %) into {}",
        card.name,
        model.len() / 1024,
        card.provenance.test_top1,
        out.display()
    );
    Ok(())
}

/// Loads a packaged model folder on the CPU.
fn load_classifier(dir: &Path) -> Result<ImageClassifier, String> {
    let card_file = dir.join(CARD);
    let card: ModelCard = serde_json::from_value(read_json(&card_file)?)
        .map_err(|e| format!("{}: {e}", card_file.display()))?;
    let model =
        fs::read(dir.join(MODEL)).map_err(|e| format!("{}: {e}", dir.join(MODEL).display()))?;
    ImageClassifier::new(card, model, &Device::flex())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn gallery(model: &Path, images: &Path, per_class: usize, out: &Path) -> Result<(), String> {
    let classifier = load_classifier(model)?;
    let size = classifier.card().image_size as u32;
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut entries = Vec::new();
    for class_dir in sorted_dirs(images)? {
        let label = file_name(&class_dir);
        let mut files: Vec<PathBuf> = fs::read_dir(&class_dir)
            .map_err(|e| format!("{}: {e}", class_dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for (k, path) in files.iter().take(per_class).enumerate() {
            let image = image::open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .to_rgba8();
            if image.dimensions() != (size, size) {
                return Err(format!(
                    "{}: {}×{} pixels; the gallery takes {size}×{size} test images",
                    path.display(),
                    image.width(),
                    image.height()
                ));
            }
            let name = format!("{label}-{k}.png");
            image
                .save(out.join(&name))
                .map_err(|e| format!("{}: {e}", out.join(&name).display()))?;
            let native_top5 = classifier
                .classify(image.as_raw(), size as usize, size as usize, 5)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            entries.push(GalleryImage {
                file: name,
                label: label.clone(),
                native_top5,
            });
        }
    }
    if entries.is_empty() {
        return Err(format!(
            "{}: no class folders with images",
            images.display()
        ));
    }
    let text = serde_json::to_string_pretty(&entries).expect("entries serialise");
    write_atomic(&out.join(GALLERY), text.as_bytes())?;
    let correct = entries
        .iter()
        .filter(|e| e.native_top5.first().is_some_and(|s| s.class == e.label))
        .count();
    println!(
        "gallery: {} images into {} ({correct} classified correctly by the native model)",
        entries.len(),
        out.display()
    );
    Ok(())
}
