//! The generic CSLA description against the official RepOpt-GhostNet handler
//! (`fixtures/golden/ghostnet_handler.safetensors`): depthwise cheap kernels with an identity
//! branch, negative scales, and group-wise identity kernels, all bit for bit.

mod common;

use burn::tensor::TensorData;
use common::golden;
use repopt_core::csla::{CslaConv, IdentityInit, UpdateRule, identity_kernel};

fn values(data: &TensorData) -> Vec<f32> {
    data.clone().try_to_vec::<f32>().expect("f32")
}

fn wide(data: &TensorData) -> Vec<f64> {
    values(data).into_iter().map(f64::from).collect()
}

#[test]
fn ghost_module_rules_match_the_official_handler_exactly() {
    let (mut file, path) = golden("ghostnet_handler.safetensors");
    let meta: serde_json::Value =
        serde_json::from_str(&file.metadata["json"]).expect("metadata json");
    let modules = meta["modules"].as_array().expect("modules");
    assert_eq!(modules.len(), 12);
    let mut negative = 0;
    for module in modules {
        let text = |key: &str| module[key].as_str().expect(key).to_string();
        let kernel = text("kernel");
        let mut take = |prefix: &str, name: &str| {
            file.take(&format!("{prefix}.{name}"), &path)
                .expect("golden tensor")
        };
        let (phi, psi) = (
            take("scale", &text("fusion_scale")),
            take("scale", &text("cheap_scale")),
        );
        negative += values(&psi).iter().filter(|v| **v < 0.0).count();
        let channels = module["channels"].as_u64().expect("channels") as usize;
        let conv = CslaConv {
            path: kernel.clone(),
            in_channels: channels,
            groups: module["groups"].as_u64().expect("groups") as usize,
            kernel_size: 3,
            scale: wide(&psi),
            branches: Vec::new(),
            identity: Some(wide(&phi)),
        };
        let init = take("init", &kernel);
        let exact =
            |ours: TensorData, name: &str, take: &mut dyn FnMut(&str, &str) -> TensorData| {
                let expected = take(name, &kernel);
                assert_eq!(ours.shape(), expected.shape(), "{name}.{kernel}");
                assert_eq!(values(&ours), values(&expected), "{name}.{kernel}");
            };
        exact(
            conv.grad_mult(UpdateRule::Sgd).unwrap(),
            "mult_sgd",
            &mut take,
        );
        exact(
            conv.grad_mult(UpdateRule::AdamW).unwrap(),
            "mult_adamw",
            &mut take,
        );
        let reinit = conv.equivalent_kernel(&init, &[], IdentityInit::Scale);
        exact(reinit.unwrap(), "reinit", &mut take);
        let unit = conv.equivalent_kernel(&init, &[], IdentityInit::Unit);
        exact(unit.unwrap(), "reinit_unit_identity", &mut take);
        let groups = conv.groups;
        exact(
            identity_kernel(channels, groups, 3),
            "identity_kernel",
            &mut take,
        );
    }
    assert!(negative > 0, "the fixture has negative ψ");
}

#[test]
fn group_wise_identity_kernels_match_the_official_ones() {
    let (mut file, path) = golden("ghostnet_handler.safetensors");
    for (c, k, g) in [(4, 3, 4), (8, 3, 2), (6, 3, 1), (4, 5, 4)] {
        let name = format!("groupwise_identity.c{c}_k{k}_g{g}");
        let expected = file.take(&name, &path).expect("golden tensor");
        let ours = identity_kernel(c, g, k);
        assert_eq!(ours.shape(), expected.shape(), "{name}");
        assert_eq!(values(&ours), values(&expected), "{name}");
    }
}
