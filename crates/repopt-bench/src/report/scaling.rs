//! How cost grows with the batch and the image size: throughput and peak memory of RepOpt-VGG
//! and RepVGG training, as lines.

use repopt_train::plot::{Line, Panel};

use super::Index;
use crate::case::{Backend, Mode};
use crate::measure::Measurement;

/// The model of the scaling sweep.
pub const SCALING_MODEL: &str = "a0";
/// The image size of the batch sweep.
pub const SCALING_IMAGE_SIZE: usize = 32;
/// The batch of the image-size sweep.
pub const SCALING_BATCH: usize = 8;

/// The modes compared.
const MODES: [Mode; 2] = [Mode::TrainRepopt, Mode::TrainRepvgg];

/// `(x, images/s, peak MiB)` of `mode` on flex for every setting of the sweep that `x_of`
/// places (`None` for settings outside it), in increasing `x`.
fn points(
    index: &Index,
    mode: Mode,
    x_of: impl Fn(usize, usize) -> Option<usize>,
) -> Vec<(f64, f64, f64)> {
    let mut points: Vec<(f64, f64, f64)> = index
        .settings
        .iter()
        .filter(|s| s.model == SCALING_MODEL)
        .filter_map(|s| {
            let x = x_of(s.batch_size, s.image_size)?;
            let m = index.get(s, mode, Backend::Flex)?;
            let peak = m.peak_resident_bytes? as f64 / (1024.0 * 1024.0);
            Some((x as f64, m.images_per_second, peak))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Throughput and memory panels over one sweep.
fn sweep_panels(
    index: &Index,
    what: &str,
    x_of: impl Fn(usize, usize) -> Option<usize>,
) -> [Panel; 2] {
    let lines = |value: fn(&(f64, f64, f64)) -> f64| -> Vec<Line> {
        MODES
            .iter()
            .map(|&mode| Line {
                label: mode.label().into(),
                points: points(index, mode, &x_of)
                    .iter()
                    .map(|p| (p.0, value(p)))
                    .collect(),
            })
            .filter(|line| !line.points.is_empty())
            .collect()
    };
    [
        Panel {
            title: format!("{SCALING_MODEL} training: images/s against {what}"),
            x_desc: what.into(),
            y_desc: "images/s".into(),
            lines: lines(|p| p.1),
        },
        Panel {
            title: format!("{SCALING_MODEL} training: peak memory against {what}"),
            x_desc: what.into(),
            y_desc: "peak resident memory, MiB".into(),
            lines: lines(|p| p.2),
        },
    ]
}

/// The four panels of the scaling plot (throughput and peak memory against the batch at
/// 32×32, and against the image size at batch 8), or none when the sweep was not measured.
pub fn scaling_panels(measurements: &[Measurement]) -> Vec<Panel> {
    let index = Index::new(measurements);
    let by_batch = sweep_panels(&index, "batch (3×32×32 images)", |batch, size| {
        (size == SCALING_IMAGE_SIZE).then_some(batch)
    });
    let by_size = sweep_panels(&index, "image size (batch 8)", |batch, size| {
        (batch == SCALING_BATCH).then_some(size)
    });
    let panels: Vec<Panel> = by_batch.into_iter().chain(by_size).collect();
    let measured = |p: &Panel| p.lines.iter().any(|l| l.points.len() > 1);
    if panels.iter().all(measured) {
        panels
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Case;

    fn run(
        mode: Mode,
        batch_size: usize,
        image_size: usize,
        images_per_second: f64,
    ) -> Measurement {
        let case = Case {
            preset: SCALING_MODEL.into(),
            width: None,
            image_size,
            batch_size,
            classes: 10,
            mode,
            backend: Backend::Flex,
            conv: repopt_models::ConvImpl::Im2col,
            gradient_checkpointing: false,
            warmup_steps: 1,
            measured_steps: 1,
            seed: 0,
        };
        let step = batch_size as f64 / images_per_second;
        Measurement {
            case,
            params: 1,
            step_seconds: vec![step],
            median_step_seconds: step,
            images_per_second,
            phases: None,
            final_loss: None,
            setup_resident_bytes: Some(1 << 20),
            setup_peak_resident_bytes: Some(1 << 20),
            peak_resident_bytes: Some(((batch_size * image_size) as u64) << 20),
            threads: 2,
            load_average: None,
            wall_seconds: 1.0,
            framework: None,
        }
    }

    fn sweep() -> Vec<Measurement> {
        let mut runs = Vec::new();
        for mode in MODES {
            for batch in [8, 16, 32] {
                runs.push(run(mode, batch, 32, 100.0 * batch as f64));
            }
            for size in [64, 128] {
                runs.push(run(mode, 8, size, 1e5 / size as f64));
            }
        }
        runs
    }

    #[test]
    fn the_panels_follow_batch_and_image_size() {
        let panels = scaling_panels(&sweep());
        assert_eq!(panels.len(), 4);
        let [batch_speed, batch_memory, size_speed, _] = &panels[..] else {
            unreachable!()
        };
        assert_eq!(batch_speed.lines.len(), 2);
        assert_eq!(
            batch_speed.lines[0].points,
            [(8.0, 800.0), (16.0, 1600.0), (32.0, 3200.0)]
        );
        // Batch 8 at 32×32 is on both sweeps; peak memory is in MiB.
        assert_eq!(size_speed.lines[1].points[0], (32.0, 800.0));
        assert_eq!(size_speed.lines[1].points[2], (128.0, 1e5 / 128.0));
        assert_eq!(batch_memory.lines[0].points[2], (32.0, 1024.0));
    }

    #[test]
    fn no_sweep_draws_nothing() {
        let only_one = vec![run(Mode::TrainRepopt, 32, 32, 300.0)];
        assert!(scaling_panels(&only_one).is_empty());
    }

    #[test]
    fn the_panels_draw_as_one_png() {
        let dir = std::env::temp_dir().join(format!("repopt-scaling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("scaling.png");
        repopt_train::plot::plot_panels(&scaling_panels(&sweep()), (800, 600), &png).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        assert_eq!(width, 800);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
