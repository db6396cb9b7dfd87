//! The same steps in this project (flex) and in the official PyTorch code.

use super::{
    Index, Ratio, find_ratio_entry, flex_pairs, optional_mib, rate, ratio_cell, write_row,
};
use crate::case::Backend;

/// Writes the framework table, if any mode was measured in PyTorch: images/s and peak memory
/// of the same step on flex and in the official PyTorch code, and flex over PyTorch (median
/// over the rounds, with their range).
pub(super) fn pytorch_table(out: &mut String, index: &Index, ratios: &[Ratio]) {
    let pairs = flex_pairs(index, Backend::Pytorch);
    if pairs.is_empty() {
        return;
    }
    out.push_str(
        "\nThis project (flex) against the official PyTorch code, the same step, batch and \
         threads, processes alternating: images/s and peak resident memory (MiB) of the \
         median round; ratios are medians of the per-round ratios (range in brackets).\n\n\
         | model | input | batch | mode | flex img/s | PyTorch img/s | **flex / PyTorch** \
         | flex MiB | PyTorch MiB | flex / PyTorch memory |\n\
         |---|---|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (setting, mode, flex, pytorch) in pairs {
        let ratio = |quantity| {
            ratio_cell(find_ratio_entry(
                ratios,
                setting,
                quantity,
                (mode, Backend::Flex),
                (mode, Backend::Pytorch),
            ))
        };
        let cells = [
            mode.label().to_string(),
            rate(flex.images_per_second),
            rate(pytorch.images_per_second),
            format!("**{}**", ratio("images_per_second")),
            optional_mib(flex.peak_resident_bytes),
            optional_mib(pytorch.peak_resident_bytes),
            ratio("peak_resident_bytes"),
        ];
        write_row(out, setting, &cells);
    }
}
