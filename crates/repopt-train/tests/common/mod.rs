//! Shared helpers of the integration tests: locating the real data, loud absence rule,
//! extracting a small CIFAR-10 JPEG subset, the command lines of short training runs, running
//! `repopt` and reading what it reports.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

/// `$REPOPT_SHARED`, or `<workspace root>/../shared`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("REPOPT_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// Whether the data at `path` is there. When it is not: a loud message on stderr, then a
/// panic unless `REPOPT_ALLOW_MISSING_DATA=1` (then `false`: the test should return).
pub fn require_data(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    let allowed = std::env::var("REPOPT_ALLOW_MISSING_DATA").is_ok_and(|v| v == "1");
    // Written to the stderr handle directly: libtest does not capture it, so the message
    // shows even when the test is skipped and passes.
    let message = format!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! MISSING TEST DATA: {what}\n\
         !!! expected at {}\n\
         !!! (set REPOPT_SHARED for the shared folder; REPOPT_ALLOW_MISSING_DATA=1 to skip)\n\
         !!! {}\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
        path.display(),
        if allowed {
            "SKIPPING this test because REPOPT_ALLOW_MISSING_DATA=1"
        } else {
            "FAILING this test"
        }
    );
    let _ = std::io::stderr().write_all(message.as_bytes());
    assert!(allowed, "missing test data: {what} at {}", path.display());
    false
}

/// The CIFAR-10 JPEG archive (`cifar10-jpg/{train,test}/<class>/NNNN.jpg`).
pub fn cifar10_jpg_archive() -> PathBuf {
    shared_dir().join("data/cifar10-jpg.tar.gz")
}

/// The CIFAR-10 JPEG archive, if there (a missing one fails loudly unless allowed).
pub fn cifar10_jpg() -> Option<PathBuf> {
    let archive = cifar10_jpg_archive();
    require_data(&archive, "CIFAR-10 JPEG archive cifar10-jpg.tar.gz").then_some(archive)
}

/// The Fashion-MNIST folder of Debian's `dataset-fashion-mnist`.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Extracts `cifar10-jpg/<split>/<class>/<name>` for the names that start with one of
/// `prefixes` into `dest`; returns `dest/cifar10-jpg/<split>`. Stops reading the archive once
/// past the split's entries.
pub fn extract_cifar10_subset(
    archive: &Path,
    dest: &Path,
    split: &str,
    prefixes: &[&str],
) -> PathBuf {
    let file = File::open(archive).expect("open the CIFAR-10 archive");
    let gz = flate2::read::GzDecoder::new(BufReader::new(file));
    let mut tar = tar::Archive::new(gz);
    let split_prefix = format!("cifar10-jpg/{split}/");
    let mut seen_split = false;
    for entry in tar.entries().expect("read the tar archive") {
        let mut entry = entry.expect("tar entry");
        let path = entry.path().expect("tar path").into_owned();
        let text = path.to_string_lossy().into_owned();
        let Some(rest) = text.strip_prefix(&split_prefix) else {
            if seen_split {
                break;
            }
            continue;
        };
        seen_split = true;
        let mut parts = rest.split('/');
        let (Some(class), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if name.is_empty() || !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let out_dir = dest.join(&split_prefix).join(class);
        std::fs::create_dir_all(&out_dir).unwrap();
        entry.unpack(out_dir.join(name)).expect("unpack");
    }
    dest.join(split_prefix)
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every parameter value (as bits) of the final model of run folder `dir`, in visiting order:
/// two runs trained alike compare equal, whatever their parameter ids.
pub fn final_weights(dir: &Path) -> Vec<Vec<u32>> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Collect(Vec<Vec<u32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values: Vec<f32> = param
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .unwrap();
            self.0.push(values.into_iter().map(f32::to_bits).collect());
        }
    }
    let model = repopt_train::RunRecord::load(dir)
        .unwrap()
        .load_model(dir, &burn::tensor::Device::flex())
        .unwrap();
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// Runs the `repopt` binary with `args`, echoing the command and its output (shown for failing
/// tests).
pub fn repopt<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_repopt"))
        .args(args)
        .output()
        .expect("run repopt");
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    eprintln!(
        "$ repopt {}\n{}{}",
        shown.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `repopt` with `args`, requires success, and returns its standard output.
pub fn repopt_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let output = repopt(args);
    assert!(output.status.success(), "repopt failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The Fashion-MNIST folder, if installed (a missing one fails loudly unless allowed).
pub fn fashion_mnist() -> Option<&'static str> {
    require_data(
        Path::new(FASHION_MNIST_DIR),
        "Fashion-MNIST (apt-get install dataset-fashion-mnist)",
    )
    .then_some(FASHION_MNIST_DIR)
}

/// The released RepOpt-GhostNet 0.5× scales (`official_scales/RepOptGhostNet_0_5x_scales.pth`
/// in the shared folder), if there (a missing file fails loudly unless allowed).
pub fn ghostnet_released_scales() -> Option<PathBuf> {
    let path = shared_dir().join("official_scales/RepOptGhostNet_0_5x_scales.pth");
    require_data(&path, "the released RepOpt-GhostNet 0.5x scales").then_some(path)
}

/// The stderr of a `repopt` command that must fail (the test fails if it succeeds).
pub fn fails<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let output = repopt(args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        !output.status.success(),
        "repopt {} should fail",
        shown.join(" ")
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The figure after `top-1 ` in a report of `repopt` (the accuracy, in %).
pub fn top1(report: &str) -> f64 {
    let at = report.find("top-1 ").expect("a top-1 figure") + 6;
    report[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `--preset tiny --width 0.25,0.25,0.25,0.25`: the tiny RepOpt-VGG at a quarter of its width,
/// the smallest model the tests train.
pub const TINY_QUARTER: [&str; 4] = ["--preset", "tiny", "--width", "0.25,0.25,0.25,0.25"];

/// `--train-limit TRAIN --test-limit TEST --epochs EPOCHS --batch-size BATCH --workers 0`: how
/// much a short training run reads and trains, its images loaded on the main thread.
pub fn short_run(
    train_limit: usize,
    test_limit: usize,
    epochs: usize,
    batch_size: usize,
) -> Vec<String> {
    [
        "--train-limit",
        &train_limit.to_string(),
        "--test-limit",
        &test_limit.to_string(),
        "--epochs",
        &epochs.to_string(),
        "--batch-size",
        &batch_size.to_string(),
        "--workers",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

/// `repopt train --method METHOD --data DATA` of the [`TINY_QUARTER`] model, sized by
/// [`short_run`] with `[train_limit, test_limit, epochs, batch_size]`, written to `--out OUT`.
/// More flags may be appended.
pub fn tiny_train(method: &str, data: &str, size: [usize; 4], out: &Path) -> Vec<String> {
    let [train_limit, test_limit, epochs, batch_size] = size;
    let mut args: Vec<String> = ["train", "--method", method, "--data", data]
        .into_iter()
        .chain(TINY_QUARTER)
        .map(String::from)
        .collect();
    args.extend(short_run(train_limit, test_limit, epochs, batch_size));
    args.extend(["--out".into(), out.to_str().unwrap().into()]);
    args
}

/// `repopt train --method METHOD --data FOLDER` of the [`TINY_QUARTER`] model: one epoch over a
/// whole (small) image folder in batches of `batch_size`, written to `--out OUT`. More flags may
/// be appended.
pub fn tiny_train_folder(
    method: &str,
    folder: &Path,
    batch_size: usize,
    out: &Path,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--method",
        method,
        "--data",
        folder.to_str().unwrap(),
    ]
    .into_iter()
    .chain(TINY_QUARTER)
    .map(String::from)
    .collect();
    args.extend(
        [
            "--epochs",
            "1",
            "--batch-size",
            &batch_size.to_string(),
            "--workers",
            "0",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from),
    );
    args
}

/// Writes an image folder at `root`: `train/` and `test/`, each with classes `a` and `b` of
/// `per_class` PNGs `0.png`, `1.png`, … made by `image`.
pub fn two_class_folder(root: &Path, per_class: usize, mut image: impl FnMut() -> image::RgbImage) {
    for split in ["train", "test"] {
        for class in ["a", "b"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..per_class {
                image().save(dir.join(format!("{i}.png"))).unwrap();
            }
        }
    }
}

/// The tiny RepOpt-VGG (full width) for Fashion-MNIST: one input channel, ten classes.
pub fn tiny_gray() -> repopt_models::RepOptVggConfig {
    repopt_models::RepOptVggConfig::preset("tiny")
        .unwrap()
        .with_in_channels(1)
        .with_num_classes(10)
}
