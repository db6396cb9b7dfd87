//! Which parameters get weight decay, as the official training code decides.

use repopt_core::ParamInfo;

/// The official rule (`set_weight_decay`): no decay on 1-D parameters (BN weights and biases,
/// scales) or biases, except identity scales (`…identity.weight`), which are decayed. Pass it to
/// `RepSgdConfig::init_with_decay`.
pub fn decays_weight(param: &ParamInfo) -> bool {
    if param.path.contains("identity.weight") {
        return true;
    }
    !(param.shape.len() == 1 || param.path.ends_with(".bias"))
}
