//! Pictures of runs: training curves of several runs, and the searched scales per block.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use repopt_models::{ScaleStats, VggScales};

use crate::error::{Result, TrainError, file_error};

/// Registers the labels' font: DejaVu Sans, embedded in the binary (the `dejavu` crate), so no
/// system font is needed; `REPOPT_FONT` may name another TrueType file.
fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        let bytes: &'static [u8] = match std::env::var_os("REPOPT_FONT") {
            Some(path) => match std::fs::read(PathBuf::from(&path)) {
                Ok(bytes) => Box::leak(bytes.into_boxed_slice()),
                Err(e) => {
                    result = Err(file_error(PathBuf::from(path), format!("REPOPT_FONT: {e}")));
                    return;
                }
            },
            None => dejavu::sans::regular(),
        };
        result = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| TrainError::Config("the font file is not a TrueType font".into()));
    });
    result
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    file_error(path, format!("cannot draw: {e}"))
}

/// `f64` coordinates on both axes.
type Coords = Cartesian2d<RangedCoordf64, RangedCoordf64>;

/// A chart of `f64` coordinates on a PNG.
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Coords>;

/// Draws `points` as a line in the `i`-th colour of the palette, named `label` in the legend.
///
/// Each segment is its own path: plotters joins the segments of a wide path with unlimited
/// miters, which turn a sharp zigzag (a noisy curve, many epochs to a pixel) into spikes far
/// outside the chart.
fn draw_line(
    chart: &mut Chart<'_, '_>,
    i: usize,
    label: &str,
    points: Vec<(f64, f64)>,
    out: &Path,
) -> Result<()> {
    let color = Palette99::pick(i).to_rgba();
    let segments = points
        .windows(2)
        .map(|w| PathElement::new(w.to_vec(), color.stroke_width(3)));
    chart
        .draw_series(segments)
        .map_err(|e| draw_err(out, e))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3)));
    Ok(())
}

/// Opacity of the shaded range of runs that share a label.
const BAND_OPACITY: f64 = 0.3;

/// Shades, lightly in the `i`-th colour of the palette, the range between the lowest and the
/// highest of `summary`'s runs at each epoch.
fn draw_band(chart: &mut Chart<'_, '_>, i: usize, summary: &Summary, out: &Path) -> Result<()> {
    let upper = summary.points.iter().map(|p| (p.epoch, p.highest));
    let lower = summary.points.iter().rev().map(|p| (p.epoch, p.lowest));
    let band = Polygon::new(
        upper.chain(lower).collect::<Vec<_>>(),
        Palette99::pick(i).mix(BAND_OPACITY).filled(),
    );
    chart
        .draw_series(std::iter::once(band))
        .map_err(|e| draw_err(out, e))?;
    Ok(())
}

/// Draws the legend of `chart` at `position`, in the style of every picture here (light
/// background, black border).
fn draw_legend<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    position: SeriesLabelPosition,
    out: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(position)
        .draw()
        .map_err(|e| draw_err(out, e))
}

/// One run's per-epoch metrics, read from its `metrics.csv`.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Legend text.
    pub label: String,
    /// `(epoch, value)` of the training loss.
    pub train_loss: Vec<(f64, f64)>,
    /// `(epoch, value)` of the validation top-1.
    pub valid_top1: Vec<(f64, f64)>,
}

impl Curve {
    /// Reads `<run>/metrics.csv`.
    pub fn read(run: &Path, label: impl Into<String>) -> Result<Self> {
        let path = run.join("metrics.csv");
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let column = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| file_error(&path, format!("no `{name}` column")))
        };
        let (loss, top1) = (column("train_loss")?, column("valid_top1")?);
        let (mut train_loss, mut valid_top1) = (Vec::new(), Vec::new());
        for line in lines {
            let cells: Vec<&str> = line.split(',').collect();
            let value = |i: usize| cells.get(i).and_then(|c| c.parse::<f64>().ok());
            let Some(epoch) = value(0) else { continue };
            if let Some(v) = value(loss) {
                train_loss.push((epoch, v));
            }
            if let Some(v) = value(top1) {
                valid_top1.push((epoch, v));
            }
        }
        Ok(Self {
            label: label.into(),
            train_loss,
            valid_top1,
        })
    }
}

/// One series of a [`Curve`]: its training loss or its validation top-1.
type Series = fn(&Curve) -> &Vec<(f64, f64)>;

/// One epoch of the runs that share a label: their mean, lowest and highest value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    epoch: f64,
    mean: f64,
    lowest: f64,
    highest: f64,
}

/// The runs that share a label, summarised per epoch.
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    label: String,
    runs: usize,
    /// The epochs of the first run that every run of the label has, in its order.
    points: Vec<Point>,
}

impl Summary {
    /// The legend text: the label, and for several runs what the line and the shading show.
    fn legend(&self) -> String {
        match self.runs {
            1 => self.label.clone(),
            n => format!("{} (mean of {n} runs, range shaded)", self.label),
        }
    }
}

/// `series` of `curves`, one [`Summary`] per label in the order the labels first appear.
fn summaries(curves: &[Curve], series: Series) -> Vec<Summary> {
    let mut groups: Vec<(&str, Vec<&Curve>)> = Vec::new();
    for curve in curves {
        match groups.iter_mut().find(|(label, _)| *label == curve.label) {
            Some((_, group)) => group.push(curve),
            None => groups.push((&curve.label, vec![curve])),
        }
    }
    let summarise = |(label, group): (&str, Vec<&Curve>)| {
        let by_epoch: Vec<HashMap<u64, f64>> = (group.iter())
            .map(|c| series(c).iter().map(|&(e, v)| (e.to_bits(), v)).collect())
            .collect();
        let point = |&(epoch, _): &(f64, f64)| {
            let values: Vec<f64> = (by_epoch.iter())
                .map(|runs| runs.get(&epoch.to_bits()).copied())
                .collect::<Option<_>>()?;
            Some(Point {
                epoch,
                mean: values.iter().sum::<f64>() / values.len() as f64,
                lowest: values.iter().copied().fold(f64::INFINITY, f64::min),
                highest: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
        };
        Summary {
            label: label.to_string(),
            runs: group.len(),
            points: series(group[0]).iter().filter_map(point).collect(),
        }
    };
    groups.into_iter().map(summarise).collect()
}

fn range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    } else {
        (0.0, 1.0)
    }
}

/// `x` as an epoch number, blank between epochs.
fn epoch_label(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// Training loss and validation top-1 per epoch of `curves`, side by side, as a PNG.
///
/// Curves that share a label (seeds of one method) are drawn as one line, their mean per epoch,
/// over the shaded range from their lowest to their highest value.
pub fn plot_curves(curves: &[Curve], out: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(out, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(out, e))?;
    let panels = root.split_evenly((1, 2));
    let epochs = curves
        .iter()
        .flat_map(|c| c.train_loss.iter().chain(&c.valid_top1).map(|p| p.0));
    let (_, last_epoch) = range(epochs);
    // The legend where the curves are not: a falling loss leaves the upper right free, a
    // rising top-1 the lower right.
    let specs: [(&str, &str, Series, SeriesLabelPosition); 2] = [
        (
            "Training loss",
            "loss",
            |c| &c.train_loss,
            SeriesLabelPosition::UpperRight,
        ),
        (
            "Validation top-1",
            "top-1 (%)",
            |c| &c.valid_top1,
            SeriesLabelPosition::LowerRight,
        ),
    ];
    for (panel, (title, y_label, series, legend)) in panels.iter().zip(specs) {
        let (y0, y1) = range(curves.iter().flat_map(|c| series(c).iter().map(|p| p.1)));
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 26))
            .margin(18)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(1.0..last_epoch.max(2.0), y0..y1)
            .map_err(|e| draw_err(out, e))?;
        chart
            .configure_mesh()
            .x_labels(last_epoch.round().clamp(2.0, 10.0) as usize)
            .x_label_formatter(&|x| epoch_label(*x))
            .x_desc("epoch")
            .y_desc(y_label)
            .label_style(("sans-serif", 16))
            .draw()
            .map_err(|e| draw_err(out, e))?;
        let summaries = summaries(curves, series);
        for (i, summary) in summaries.iter().enumerate() {
            if summary.runs > 1 {
                draw_band(&mut chart, i, summary, out)?;
            }
        }
        for (i, summary) in summaries.iter().enumerate() {
            let mean = summary.points.iter().map(|p| (p.epoch, p.mean)).collect();
            draw_line(&mut chart, i, &summary.legend(), mean, out)?;
        }
        draw_legend(&mut chart, legend, out)?;
    }
    root.present().map_err(|e| draw_err(out, e))
}

/// Mean ± standard deviation of the scales `s`, `t` and `γ` of every block, as a PNG.
pub fn plot_scales(scales: &VggScales, out: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(out, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(out, e))?;
    let n = scales.blocks.len();
    let stats = |values: Option<&Vec<f32>>| values.map(|v| ScaleStats::of(v));
    type Pick = fn(&repopt_models::BlockScales) -> Option<&Vec<f32>>;
    let kinds: [(&str, Pick); 3] = [
        ("s (3x3 branch)", |b| Some(&b.conv)),
        ("t (1x1 branch)", |b| Some(&b.conv_1x1)),
        ("γ (identity branch)", |b| b.identity.as_ref()),
    ];
    let all = scales.blocks.iter().flat_map(|b| {
        kinds
            .iter()
            .filter_map(move |(_, pick)| stats(pick(b)).map(|s| [s.mean - s.std, s.mean + s.std]))
    });
    let (y0, y1) = range(all.flatten().map(f64::from));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Searched scales per block ({})",
                Path::new(&scales.source)
                    .file_name()
                    .map_or(scales.source.clone(), |n| n.to_string_lossy().into_owned())
            ),
            ("sans-serif", 24),
        )
        .margin(18)
        .x_label_area_size(60)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), y0..y1)
        .map_err(|e| draw_err(out, e))?;
    let names: Vec<String> = scales.blocks.iter().map(|b| b.spec.name.clone()).collect();
    chart
        .configure_mesh()
        .x_labels(n.min(40))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                names[i as usize].trim_start_matches("stage").to_string()
            } else {
                String::new()
            }
        })
        .x_desc("block (stage.index)")
        .y_desc("mean ± std over channels")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| draw_err(out, e))?;
    for (k, (label, pick)) in kinds.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let offset = (k as f64 - 1.0) * 0.2;
        let points: Vec<(f64, ScaleStats)> = scales
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| stats(pick(b)).map(|s| (i as f64 + offset, s)))
            .collect();
        chart
            .draw_series(points.iter().map(|(x, s)| {
                ErrorBar::new_vertical(
                    *x,
                    f64::from(s.mean - s.std),
                    f64::from(s.mean),
                    f64::from(s.mean + s.std),
                    color.filled(),
                    8,
                )
            }))
            .map_err(|e| draw_err(out, e))?
            .label(*label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight, out)?;
    root.present().map_err(|e| draw_err(out, e))
}

/// One labelled line of [`plot_lines`].
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// `(x, y)` points.
    pub points: Vec<(f64, f64)>,
}

/// Labelled lines on one chart, as a PNG.
pub fn plot_lines(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    out: &Path,
) -> Result<()> {
    let panel = Panel {
        title: title.into(),
        x_desc: x_desc.into(),
        y_desc: y_desc.into(),
        lines: lines.to_vec(),
    };
    plot_panels(std::slice::from_ref(&panel), (1200, 600), out)
}

/// One chart of [`plot_panels`].
#[derive(Debug, Clone)]
pub struct Panel {
    /// Caption.
    pub title: String,
    /// What the x axis shows.
    pub x_desc: String,
    /// What the y axis shows.
    pub y_desc: String,
    /// The lines.
    pub lines: Vec<Line>,
}

/// `panels` in a grid of two columns (one for a single panel), as one PNG of `size` pixels.
pub fn plot_panels(panels: &[Panel], size: (u32, u32), out: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(out, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(out, e))?;
    let columns = panels.len().clamp(1, 2);
    let rows = panels.len().div_ceil(columns).max(1);
    let areas = root.split_evenly((rows, columns));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, panel, out)?;
    }
    root.present().map_err(|e| draw_err(out, e))
}

/// Draws `panel` into `area`.
fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    out: &Path,
) -> Result<()> {
    let lines = &panel.lines;
    let (x0, x1) = range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
    let (y0, y1) = range(
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .filter(|y| y.is_finite()),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| draw_err(out, e))?;
    chart
        .configure_mesh()
        .x_desc(&panel.x_desc)
        .y_desc(&panel.y_desc)
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| draw_err(out, e))?;
    for (i, line) in lines.iter().enumerate() {
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        draw_line(&mut chart, i, &line.label, points, out)?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight, out)
}

/// The distribution of a deployed model's 3×3 kernel values as int8 sees them per tensor: each
/// layer's values divided by its largest magnitude, in `bins` bins over `[−1, 1]`, as
/// `log10` of the fraction of all values in a bin (empty bins left out).
pub fn kernel_histogram(model: &repopt_models::RepOptVgg, bins: usize) -> Vec<(f64, f64)> {
    let mut counts = vec![0u64; bins];
    let mut total = 0u64;
    for block in model.blocks() {
        let Some(conv) = block.conv.as_ref() else {
            continue;
        };
        let values: Vec<f32> = conv
            .weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 kernel");
        let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max == 0.0 {
            continue;
        }
        for v in values {
            let unit = f64::from(v / max);
            let bin = (((unit + 1.0) / 2.0) * bins as f64).floor() as usize;
            counts[bin.min(bins - 1)] += 1;
            total += 1;
        }
    }
    counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(i, &c)| {
            let center = -1.0 + (i as f64 + 0.5) * 2.0 / bins as f64;
            (center, (c as f64 / total as f64).log10())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 640-epoch curve alternating between 10 and 80, starting high or low.
    fn zigzag(label: &str, high_first: bool) -> Curve {
        let valid_top1: Vec<(f64, f64)> = (1..=640)
            .map(|e| {
                (
                    e as f64,
                    if (e % 2 == 0) == high_first {
                        80.0
                    } else {
                        10.0
                    },
                )
            })
            .collect();
        Curve {
            label: label.into(),
            train_loss: valid_top1.iter().map(|&(e, v)| (e, v / 40.0)).collect(),
            valid_top1,
        }
    }

    /// The picture of `curves` as RGB pixels.
    fn draw(curves: &[Curve]) -> image::RgbImage {
        let out = std::env::temp_dir().join(format!("curves-{}.png", std::process::id()));
        plot_curves(curves, &out).unwrap();
        let image = image::open(&out).unwrap().to_rgb8();
        std::fs::remove_file(&out).unwrap();
        image
    }

    /// How many pixels of the picture's outer 12-px margin are not white.
    fn margin_pixels(image: &image::RgbImage) -> usize {
        let (w, h) = image.dimensions();
        let margin = 12;
        (image.enumerate_pixels())
            .filter(|(x, y, _)| *x < margin || *y < margin || *x >= w - margin || *y >= h - margin)
            .filter(|(_, _, p)| p.0 != [255, 255, 255])
            .count()
    }

    /// A noisy curve over many epochs, as plain SGD's test top-1 at 640 epochs, stays inside
    /// its chart: the picture's outer margin is left white.
    #[test]
    fn a_zigzag_curve_stays_inside_its_chart() {
        let coloured = margin_pixels(&draw(&[zigzag("plain", true)]));
        assert_eq!(coloured, 0, "{coloured} pixels drawn in the margin");
    }

    #[test]
    fn runs_sharing_a_label_are_summarised_per_epoch() {
        let curve = |label: &str, top1: &[f64]| Curve {
            label: label.into(),
            train_loss: Vec::new(),
            valid_top1: (1..).map(f64::from).zip(top1.iter().copied()).collect(),
        };
        let curves = [
            curve("a", &[10.0, 20.0, 30.0, 40.0]),
            curve("b", &[5.0, 6.0]),
            curve("a", &[20.0, 40.0, 60.0]),
        ];
        let got = summaries(&curves, |c| &c.valid_top1);
        let point = |epoch, mean, lowest, highest| Point {
            epoch,
            mean,
            lowest,
            highest,
        };
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].label.as_str(), got[0].runs), ("a", 2));
        assert_eq!(got[0].legend(), "a (mean of 2 runs, range shaded)");
        // Epoch 4 is left out: the second run of `a` does not have it.
        assert_eq!(
            got[0].points,
            [
                point(1.0, 15.0, 10.0, 20.0),
                point(2.0, 30.0, 20.0, 40.0),
                point(3.0, 45.0, 30.0, 60.0),
            ]
        );
        assert_eq!((got[1].legend(), got[1].runs), ("b".to_string(), 1));
        assert_eq!(
            got[1].points,
            [point(1.0, 5.0, 5.0, 5.0), point(2.0, 6.0, 6.0, 6.0)]
        );
    }

    /// Seeds out of phase shade their whole range, in their colour, inside the chart.
    #[test]
    fn the_range_of_seeds_is_shaded_inside_its_chart() {
        let seeds = [zigzag("plain", true), zigzag("plain", false)];
        let image = draw(&seeds);
        let coloured = margin_pixels(&image);
        assert_eq!(coloured, 0, "{coloured} pixels drawn in the margin");
        let [r, g, b] = Palette99::pick(0).rgb().into();
        let shade = [r, g, b].map(|c| (1.0 - BAND_OPACITY) * 255.0 + BAND_OPACITY * f64::from(c));
        let shaded = (image.pixels())
            .filter(|p| (p.0.iter().zip(shade)).all(|(&c, s)| (f64::from(c) - s).abs() <= 2.0))
            .count();
        // Each panel's plot area is about 600 x 450 pixels, most of it between 10 and 80.
        assert!(shaded > 200_000, "{shaded} pixels shaded");
    }

    #[test]
    fn epochs_are_labelled_whole() {
        assert_eq!(epoch_label(640.0), "640");
        assert_eq!(epoch_label(1.5), "");
    }
}
