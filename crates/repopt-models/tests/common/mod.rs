#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::{Device, TensorData};
use repopt_core::tensor_io::TensorFile;
use repopt_models::RepOptVggConfig;

pub fn golden(name: &str) -> (TensorFile, PathBuf) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/golden")
        .join(name);
    (TensorFile::read(&path).expect("golden fixture"), path)
}

/// `../shared` beside the project root, or `$REPOPT_SHARED`. Data that is not committed (the
/// official `.pth` scales, CIFAR-10) lives there. Returns `None` (after saying so loudly) only
/// when `REPOPT_ALLOW_MISSING_DATA=1`; otherwise a missing file fails the test.
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    let root = std::env::var_os("REPOPT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = root.join(relative);
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "\n!!! MISSING TEST DATA: {} does not exist.\n!!! Set REPOPT_SHARED to the folder that \
         holds `{relative}` (see README.md).\n",
        path.display()
    );
    if std::env::var("REPOPT_ALLOW_MISSING_DATA").as_deref() == Ok("1") {
        eprintln!("{message}!!! REPOPT_ALLOW_MISSING_DATA=1: skipping this check.\n");
        None
    } else {
        panic!("{message}");
    }
}

pub fn device() -> Device {
    Device::flex().autodiff()
}

pub fn tiny() -> RepOptVggConfig {
    RepOptVggConfig::preset("tiny")
        .unwrap()
        .with_num_classes(10)
}

/// `sum|a-b| / sum|b|`, in f64.
pub fn rel_diff(a: &TensorData, b: &TensorData) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let a = a.clone().convert::<f64>().try_to_vec::<f64>().unwrap();
    let b = b.clone().convert::<f64>().try_to_vec::<f64>().unwrap();
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum();
    let den: f64 = b.iter().map(|y| y.abs()).sum();
    num / den
}

pub fn max_abs_diff(a: &TensorData, b: &TensorData) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let a = a.clone().convert::<f32>().try_to_vec::<f32>().unwrap();
    let b = b.clone().convert::<f32>().try_to_vec::<f32>().unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The tensors whose name starts with `prefix.`, with the prefix removed.
pub fn with_prefix(file: &TensorFile, prefix: &str) -> BTreeMap<String, TensorData> {
    let prefix = format!("{prefix}.");
    file.tensors
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
        .collect()
}

pub fn vec_f32(data: &TensorData) -> Vec<f32> {
    data.clone().convert::<f32>().try_to_vec().unwrap()
}
