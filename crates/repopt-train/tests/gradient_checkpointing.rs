//! `--gradient-checkpointing` recomputes in the backward pass what the forward pass kept; the
//! numbers are the same: a run with it ends with the same weights, bit for bit, as one without.

mod common;

/// Trains `method` for one short epoch with and without gradient checkpointing and compares
/// the final weights.
fn same_weights_with_and_without(method: &str) {
    let Some(data) = common::fashion_mnist() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = common::tiny_train(method, data, [320, 64, 1, 32], &out);
        args.extend(extra.iter().map(|a| a.to_string()));
        common::repopt_ok(&args);
        out
    };
    let kept = run("kept", &[]);
    let recomputed = run("recomputed", &["--gradient-checkpointing"]);
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(recomputed.join("run.json")).unwrap())
            .unwrap();
    assert_eq!(recorded["config"]["gradient_checkpointing"], true);
    assert!(
        common::final_weights(&kept) == common::final_weights(&recomputed),
        "{method}: gradient checkpointing changed the trained weights"
    );
}

#[test]
fn the_plain_model_with_grad_mults_trains_to_the_same_weights() {
    same_weights_with_and_without("repopt-ones");
}

#[test]
fn repvgg_trains_to_the_same_weights() {
    same_weights_with_and_without("repvgg");
}
