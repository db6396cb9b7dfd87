//! The packaged model is what its card says: it loads into the card's architecture and scores
//! the card's test accuracy on the real CIFAR-10 test images, one image at a time through the
//! same path the page uses.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use repopt_web_demo::{ImageClassifier, ModelCard};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model")
}

fn load() -> ImageClassifier {
    let card: ModelCard = serde_json::from_str(
        &std::fs::read_to_string(model_dir().join("model.json")).expect("model.json"),
    )
    .expect("a valid card");
    let model = std::fs::read(model_dir().join("model.bpk")).expect("model.bpk");
    ImageClassifier::new(card, model, &Device::flex()).expect("the model fits its card")
}

/// `$REPOPT_SHARED/data/cifar10-jpg.tar.gz`, default `<workspace>/../shared/...`; loud when
/// absent (a failure unless `REPOPT_ALLOW_MISSING_DATA=1`).
fn cifar10_archive() -> Option<PathBuf> {
    let shared = std::env::var_os("REPOPT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let archive = shared.join("data/cifar10-jpg.tar.gz");
    if archive.is_file() {
        return Some(archive);
    }
    let allowed = std::env::var("REPOPT_ALLOW_MISSING_DATA").is_ok_and(|v| v == "1");
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! MISSING TEST DATA: the CIFAR-10 JPEG archive, expected at {} \
         (set REPOPT_SHARED; REPOPT_ALLOW_MISSING_DATA=1 to skip) — {}\n",
        archive.display(),
        if allowed { "SKIPPING" } else { "FAILING" }
    );
    assert!(allowed, "missing test data: {}", archive.display());
    None
}

#[test]
fn packaged_model_scores_the_accuracy_its_card_states() {
    let Some(archive) = cifar10_archive() else {
        return;
    };
    let classifier = load();
    let card = classifier.card().clone();
    let size = card.image_size;
    let gz = flate2::read::GzDecoder::new(BufReader::new(File::open(&archive).unwrap()));
    let mut tar = tar::Archive::new(gz);
    let (mut seen, mut correct) = (0usize, 0usize);
    for entry in tar.entries().expect("a tar archive") {
        let mut entry = entry.expect("a tar entry");
        let path = entry.path().expect("a path").to_string_lossy().into_owned();
        let Some(rest) = path.strip_prefix("cifar10-jpg/test/") else {
            continue;
        };
        let Some((class, name)) = rest.split_once('/') else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let label = card
            .classes
            .iter()
            .position(|c| c == class)
            .unwrap_or_else(|| panic!("{path}: class `{class}` is not in the card"));
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let image = image::load_from_memory(&bytes).unwrap().to_rgba8();
        let top = classifier
            .classify(image.as_raw(), size, size, 1)
            .expect("classified");
        seen += 1;
        correct += usize::from(top[0].index == label);
    }
    assert_eq!(
        seen, card.provenance.test_images,
        "test images in the archive"
    );
    let top1 = 100.0 * correct as f64 / seen as f64;
    // The card's figure comes from batched evaluation at training time; per-image inference
    // may round a near-tie the other way on a few images.
    assert!(
        (top1 - card.provenance.test_top1).abs() <= 0.05,
        "top-1 {top1:.2} % one image at a time, the card says {:.2} %",
        card.provenance.test_top1
    );
}

#[test]
fn input_is_normalised_per_channel_and_checked() {
    let classifier = load();
    let card = classifier.card().clone();
    let size = card.image_size;
    let mut rgba = vec![0u8; size * size * 4];
    for pixel in rgba.chunks_exact_mut(4) {
        pixel.copy_from_slice(&[255, 0, 128, 255]);
    }
    let input = classifier.input(&rgba, size, size).unwrap();
    assert_eq!(input.dims(), [1, 3, size, size]);
    let values: Vec<f32> = input.into_data().try_to_vec::<f32>().unwrap();
    let expected = |c: usize, v: f32| (v / 255.0 - card.mean[c]) / card.std[c];
    let plane = size * size;
    assert!((values[0] - expected(0, 255.0)).abs() < 1e-6);
    assert!((values[plane] - expected(1, 0.0)).abs() < 1e-6);
    assert!((values[2 * plane + plane - 1] - expected(2, 128.0)).abs() < 1e-6);

    let small = classifier.input(&rgba[..16], 2, 2).unwrap_err();
    assert!(small.0.contains(&format!("takes {size}×{size}")), "{small}");
    let short = classifier
        .input(&rgba[..rgba.len() - 4], size, size)
        .unwrap_err();
    assert!(short.0.contains("RGBA bytes"), "{short}");
}

#[test]
fn a_card_that_does_not_fit_the_weights_is_refused() {
    let mut card: ModelCard =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("model.json")).unwrap())
            .unwrap();
    card.architecture.width_multiplier = [0.5; 4];
    let model = std::fs::read(model_dir().join("model.bpk")).unwrap();
    let error = ImageClassifier::new(card, model.clone(), &Device::flex()).unwrap_err();
    assert!(error.0.contains("does not fit model.json"), "{error}");

    let card: ModelCard =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("model.json")).unwrap())
            .unwrap();
    let error = ImageClassifier::new(card, model[..100].to_vec(), &Device::flex()).unwrap_err();
    assert!(error.0.contains("not a readable burnpack"), "{error}");
}
