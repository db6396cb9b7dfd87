//! `repopt verify`: CSLA + SGD and target + RepOptimizer keep equivalent kernels, for random
//! scales of both signs.

use std::process::Command;

fn verify(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_repopt"))
        .arg("verify")
        .args(args)
        .output()
        .expect("run repopt verify");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "repopt verify {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn gr_equals_csla_through_the_cli() {
    let out = verify(&["--steps", "4", "--seed", "2"]);
    let worst: f64 = out
        .lines()
        .last()
        .and_then(|l| l.split("largest relative difference ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a largest relative difference");
    assert!(worst < 1e-10, "f64 difference {worst}");
    assert!(
        out.contains("stage0") && out.contains("stage4.0"),
        "every block is compared: {out}"
    );
}
