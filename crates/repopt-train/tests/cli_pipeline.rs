//! The `repopt` command line end to end on real data: hyper-search → extract-scales → train →
//! eval, exact resume, a CIFAR-10 JPEG image folder, and clear errors for bad input.

mod common;

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;
use repopt_core::param_infos;
use repopt_models::VggScales;
use repopt_train::RunRecord;

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn hyper_search_extract_train_eval_on_fashion_mnist() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let hs = tmp.path().join("hs");
    let mut shared: Vec<String> = ["--data", data, "--preset", "tiny"]
        .map(String::from)
        .to_vec();
    shared.extend(common::short_run(3000, 1000, 1, 64));
    shared.extend(["--lr", "0.05"].map(String::from));
    let mut args = vec!["hs"];
    args.extend(shared.iter().map(String::as_str));
    args.extend(["--out", path_str(&hs)]);
    common::repopt_ok(&args);
    for file in [
        "scales.safetensors",
        "model.bpk",
        "metrics.csv",
        "run.json",
        "experiment.log",
    ] {
        assert!(hs.join(file).is_file(), "hs/{file} missing");
    }
    assert!(hs.join("checkpoint/model-1.bpk").is_file());
    let csv = std::fs::read_to_string(hs.join("metrics.csv")).unwrap();
    assert!(
        csv.starts_with("epoch,") && csv.contains("valid_top1") && csv.lines().count() == 2,
        "{csv}"
    );

    let extracted = tmp.path().join("extracted.safetensors");
    common::repopt_ok(&[
        "extract-scales",
        "--run",
        path_str(&hs),
        "--out",
        path_str(&extracted),
    ]);
    let a = VggScales::load(&extracted, None).unwrap();
    let b = VggScales::load(&hs.join("scales.safetensors"), None).unwrap();
    assert_eq!(a.blocks, b.blocks);
    let table = common::repopt_ok(&["inspect-scales", path_str(&extracted)]);
    assert!(table.contains("stage1.1") && table.contains("±"), "{table}");

    let trained = tmp.path().join("repopt");
    let mut args = vec![
        "train",
        "--method",
        "repopt",
        "--scales",
        path_str(&extracted),
    ];
    args.extend(shared.iter().map(String::as_str));
    args.extend(["--out", path_str(&trained)]);
    let summary = common::repopt_ok(&args);
    assert!(
        summary.contains("model") && summary.contains("metrics"),
        "{summary}"
    );
    let report = common::repopt_ok(&["eval", "--run", path_str(&trained)]);
    let accuracy = common::top1(&report);
    assert!(
        accuracy > 30.0,
        "top-1 {accuracy} % is not clearly above chance (10 %)"
    );
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A scales artifact for the 1-channel tiny model: the resumed run rebuilds its Grad Mults
    // from it.
    let mut scales = VggScales::constant(&common::tiny_gray(), 1.0);
    for (i, block) in scales.blocks.iter_mut().enumerate() {
        block
            .conv
            .iter_mut()
            .for_each(|s| *s = 0.5 + 0.1 * i as f32);
        block
            .conv_1x1
            .iter_mut()
            .for_each(|s| *s = 1.2 - 0.1 * i as f32);
    }
    let scales_path = tmp.path().join("scales.safetensors");
    scales.save(&scales_path).unwrap();

    let full = tmp.path().join("full");
    let args = |out: &Path, resume: bool| {
        let mut a: Vec<String> = [
            "train", "--method", "repopt", "--data", data, "--preset", "tiny", "--seed", "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(common::short_run(640, 200, 2, 64));
        a.extend(["--scales".into(), path_str(&scales_path).into()]);
        a.extend(["--out".into(), path_str(out).into()]);
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let run = |a: Vec<String>| common::repopt_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    run(args(&full, false));

    // The same run, interrupted after epoch 1: only epoch 1's checkpoint survives.
    let resumed = tmp.path().join("resumed");
    common::copy_dir(&full, &resumed);
    for name in ["model", "optim", "scheduler"] {
        std::fs::remove_file(resumed.join(format!("checkpoint/{name}-2.bpk"))).unwrap();
    }
    std::fs::remove_file(resumed.join("model.bpk")).unwrap();
    let resumed_output = common::repopt(&args(&resumed, true));
    assert!(resumed_output.status.success());
    // Progress is logged on stderr; results go to stdout.
    let log = String::from_utf8_lossy(&resumed_output.stderr);
    assert!(log.contains("resuming at epoch 2"), "{log}");

    let device = Device::flex();
    let load = |dir: &Path| {
        RunRecord::load(dir)
            .unwrap()
            .load_model(dir, &device)
            .unwrap()
    };
    let (a, b) = (load(&full), load(&resumed));
    let values = |m: &repopt_models::RepOptVgg| {
        let mut out = Vec::new();
        m.visit(&mut Collect(&mut out));
        out
    };
    let (va, vb) = (values(&a), values(&b));
    assert_eq!(va.len(), vb.len());
    assert_eq!(param_infos(&a).len(), va.len());
    for ((name, x), (_, y)) in va.iter().zip(&vb) {
        assert_eq!(
            x, y,
            "{name} differs between the resumed and the uninterrupted run"
        );
    }
}

struct Collect<'a>(&'a mut Vec<(usize, Vec<f32>)>);

impl burn::module::ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<D>>,
    ) {
        let values = param
            .val()
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap();
        let index = self.0.len();
        self.0.push((index, values));
    }
}

#[test]
fn cifar10_jpeg_folder_trains_and_evaluates() {
    let Some(archive) = common::cifar10_jpg() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A real image folder: 30 test images per class, used as both splits.
    let test = common::extract_cifar10_subset(&archive, tmp.path(), "test", &["000", "001", "002"]);
    let root = tmp.path().join("cifar");
    std::fs::create_dir_all(&root).unwrap();
    common::copy_dir(&test, &root.join("train"));
    common::copy_dir(&test, &root.join("test"));
    let out = tmp.path().join("run");
    let summary = common::repopt_ok(&[
        "train",
        "--method",
        "repvgg",
        "--data",
        path_str(&root),
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--batch-size",
        "30",
        "--workers",
        "2",
        "--out",
        path_str(&out),
    ]);
    assert!(summary.contains("top-1"), "{summary}");
    let record = RunRecord::load(&out).unwrap();
    assert_eq!(record.architecture.num_classes, 10);
    assert_eq!(record.architecture.in_channels, 3);
}

/// Decoded images kept in memory (`--cache-images on`) train the same weights, bit for bit, as
/// images decoded from their files in every epoch (`off`); the choice is recorded.
#[test]
fn kept_decoded_images_train_the_same_weights() {
    let Some(archive) = common::cifar10_jpg() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let test = common::extract_cifar10_subset(&archive, tmp.path(), "test", &["000", "001"]);
    let root = tmp.path().join("cifar");
    std::fs::create_dir_all(&root).unwrap();
    common::copy_dir(&test, &root.join("train"));
    common::copy_dir(&test, &root.join("test"));
    let run = |cache: &str| {
        let out = tmp.path().join(cache);
        common::repopt_ok(&[
            "train",
            "--method",
            "repopt-ones",
            "--data",
            path_str(&root),
            "--preset",
            "tiny",
            "--epochs",
            "2",
            "--batch-size",
            "20",
            "--workers",
            "0",
            "--cache-images",
            cache,
            "--out",
            path_str(&out),
        ]);
        let recorded: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(recorded["config"]["cache_images"], cache);
        out
    };
    let (kept, decoded) = (run("on"), run("off"));
    assert!(
        common::final_weights(&kept) == common::final_weights(&decoded),
        "keeping the decoded images changed the trained weights"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out = path_str(&out);

    let err = common::fails(&[
        "train",
        "--method",
        "plain",
        "--data",
        "/no/such/folder",
        "--out",
        out,
    ]);
    assert!(err.contains("/no/such/folder"), "{err}");

    // A corrupt JPEG inside an image folder: the error names the file.
    let root = tmp.path().join("images");
    for split in ["train", "test"] {
        for class in ["cat", "dog"] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("broken.jpg"), b"\xff\xd8\xff not really a jpeg").unwrap();
        }
    }
    let err = common::fails(&[
        "train",
        "--method",
        "plain",
        "--data",
        path_str(&root),
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--out",
        out,
    ]);
    assert!(err.contains("broken.jpg"), "{err}");

    // A truncated IDX file.
    if let Some(data) = common::fashion_mnist() {
        let idx = tmp.path().join("idx");
        std::fs::create_dir_all(&idx).unwrap();
        for name in [
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ] {
            std::fs::copy(Path::new(data).join(name), idx.join(name)).unwrap();
        }
        let images = std::fs::read(Path::new(data).join("train-images-idx3-ubyte.gz")).unwrap();
        std::fs::write(
            idx.join("train-images-idx3-ubyte.gz"),
            &images[..images.len() / 2],
        )
        .unwrap();
        let err = common::fails(&[
            "train",
            "--method",
            "plain",
            "--data",
            path_str(&idx),
            "--out",
            out,
        ]);
        assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");

        // Scales of another model, which the file records: the flag and the file are named.
        let scales = tmp.path().join("tiny.safetensors");
        let mut tiny = VggScales::constant(&common::tiny_gray(), 1.0);
        tiny.save(&scales).unwrap();
        let other_model = |scales: &Path| {
            common::fails(&[
                "train",
                "--method",
                "repopt",
                "--scales",
                path_str(scales),
                "--data",
                data,
                "--preset",
                "a0",
                "--out",
                out,
            ])
        };
        let err = other_model(&scales);
        assert!(
            err.contains("--preset a0") && err.contains("tiny.safetensors"),
            "{err}"
        );
        // A file that records no architecture: the block and both shapes are named.
        tiny.architecture = None;
        let scales = tmp.path().join("anonymous.safetensors");
        tiny.save(&scales).unwrap();
        let err = other_model(&scales);
        assert!(
            err.contains("stage0") && err.contains("[48, 1, 3, 3]") && err.contains("[8, 1, 3, 3]"),
            "{err}"
        );
    }

    // Settings that contradict each other.
    let err = common::fails(&["train", "--method", "repopt", "--data", ".", "--out", out]);
    assert!(err.contains("--scales"), "{err}");
    let err = common::fails(&[
        "train",
        "--method",
        "plain",
        "--clip-grad-norm",
        "1",
        "--data",
        ".",
        "--out",
        out,
    ]);
    assert!(err.contains("hyper-search"), "{err}");
    let err = common::fails(&["eval", "--run", path_str(tmp.path())]);
    assert!(err.contains("run.json"), "{err}");
}

#[test]
fn existing_checkpoints_are_never_overwritten() {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let args = [
        "train",
        "--method",
        "plain",
        "--data",
        data,
        "--preset",
        "tiny",
        "--train-limit",
        "128",
        "--test-limit",
        "64",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--out",
        path_str(&out),
    ];
    common::repopt_ok(&args);
    let before = std::fs::read(out.join("checkpoint/model-1.bpk")).unwrap();
    let err = common::fails(&args);
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(
        std::fs::read(out.join("checkpoint/model-1.bpk")).unwrap(),
        before
    );
}
