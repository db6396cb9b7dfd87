//! Image operations as Pillow computes them, on `u8` HWC [`ImageItem`]s (1 or 3 channels):
//! lookup tables (`ImageOps`), blends with a degenerate image (`ImageEnhance`), the 3×3 `SMOOTH`
//! filter and affine resampling (`Image.transform`) with Pillow's bilinear and bicubic filters.
//! The official RandAugment ([`super::randaug`]) is built from them; `tests/randaug.rs` checks
//! each against Pillow's own output.

use super::ImageItem;

/// A resampling filter of [`affine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Pillow's `BILINEAR` (2×2 neighbours).
    Bilinear,
    /// Pillow's `BICUBIC` (4×4 neighbours, `a = −1`).
    Bicubic,
}

/// Applies a 256-entry lookup table to every channel.
pub fn lut(item: &ImageItem, table: impl Fn(u8) -> u8) -> ImageItem {
    let table: Vec<u8> = (0..=255u8).map(table).collect();
    let pixels = item.pixels.iter().map(|&v| table[v as usize]).collect();
    ImageItem {
        pixels,
        ..item.clone()
    }
}

/// Applies one lookup table per channel.
fn lut_per_channel(item: &ImageItem, tables: &[[u8; 256]]) -> ImageItem {
    let c = item.channels;
    let pixels = item
        .pixels
        .iter()
        .enumerate()
        .map(|(i, &v)| tables[i % c][v as usize])
        .collect();
    ImageItem {
        pixels,
        ..item.clone()
    }
}

fn histograms(item: &ImageItem) -> Vec<[u64; 256]> {
    let mut h = vec![[0u64; 256]; item.channels];
    for (i, &v) in item.pixels.iter().enumerate() {
        h[i % item.channels][v as usize] += 1;
    }
    h
}

/// `ImageOps.autocontrast` (no cutoff): each channel's range `[lo, hi]` stretched to `[0, 255]`,
/// `v ↦ clamp(trunc(v·255/(hi−lo) − lo·255/(hi−lo)))`.
pub fn autocontrast(item: &ImageItem) -> ImageItem {
    let tables: Vec<[u8; 256]> = histograms(item)
        .iter()
        .map(|h| {
            let lo = h.iter().position(|&n| n > 0).unwrap_or(0);
            let hi = h.iter().rposition(|&n| n > 0).unwrap_or(0);
            let mut table = [0u8; 256];
            for (i, out) in table.iter_mut().enumerate() {
                *out = if hi <= lo {
                    i as u8
                } else {
                    let scale = 255.0 / (hi - lo) as f64;
                    let offset = -(lo as f64) * scale;
                    ((i as f64 * scale + offset) as i64).clamp(0, 255) as u8
                };
            }
            table
        })
        .collect();
    lut_per_channel(item, &tables)
}

/// `ImageOps.equalize`: per channel, `step = (N − count of the last used level) / 256` and
/// `v ↦ (step/2 + #pixels below v) / step`.
pub fn equalize(item: &ImageItem) -> ImageItem {
    let tables: Vec<[u8; 256]> = histograms(item)
        .iter()
        .map(|h| {
            let used: Vec<u64> = h.iter().copied().filter(|&n| n > 0).collect();
            let mut table = [0u8; 256];
            let step = match used.len() {
                0 | 1 => 0,
                _ => (used.iter().sum::<u64>() - used[used.len() - 1]) / 256,
            };
            let mut n = step / 2;
            for (i, out) in table.iter_mut().enumerate() {
                *out = n.checked_div(step).map_or(i as u8, |v| v.min(255) as u8);
                n += h[i];
            }
            table
        })
        .collect();
    lut_per_channel(item, &tables)
}

/// Luminance as Pillow's `convert("L")`: `(19595·R + 38470·G + 7471·B + 2¹⁵) >> 16`.
pub fn luminance(item: &ImageItem) -> Vec<u8> {
    match item.channels {
        3 => item
            .pixels
            .chunks_exact(3)
            .map(|p| {
                let l = 19595 * p[0] as u32 + 38470 * p[1] as u32 + 7471 * p[2] as u32 + 0x8000;
                (l >> 16) as u8
            })
            .collect(),
        _ => item.pixels.clone(),
    }
}

/// `Image.blend(degenerate, item, alpha)`: `d + α·(v − d)` in `f32`, truncated (clamped to
/// `[0, 255]` when `α` is outside `[0, 1]`).
pub fn blend(degenerate: &[u8], item: &ImageItem, alpha: f32) -> ImageItem {
    let pixels = degenerate
        .iter()
        .zip(&item.pixels)
        .map(|(&d, &v)| {
            let mixed = d as f32 + alpha * (v as f32 - d as f32);
            mixed.clamp(0.0, 255.0) as u8
        })
        .collect();
    ImageItem {
        pixels,
        ..item.clone()
    }
}

/// Every pixel's luminance, repeated over the item's channels.
fn gray_as_item_channels(item: &ImageItem, gray: &[u8]) -> Vec<u8> {
    gray.iter()
        .flat_map(|&l| std::iter::repeat_n(l, item.channels))
        .collect()
}

/// `ImageEnhance.Color`: blend with the grayscale image.
pub fn color(item: &ImageItem, factor: f32) -> ImageItem {
    let gray = gray_as_item_channels(item, &luminance(item));
    blend(&gray, item, factor)
}

/// `ImageEnhance.Contrast`: blend with a flat image at the mean luminance (rounded).
pub fn contrast(item: &ImageItem, factor: f32) -> ImageItem {
    let l = luminance(item);
    let mean = l.iter().map(|&v| v as f64).sum::<f64>() / l.len().max(1) as f64;
    let flat = vec![(mean + 0.5) as u8; item.pixels.len()];
    blend(&flat, item, factor)
}

/// `ImageEnhance.Brightness`: blend with black.
pub fn brightness(item: &ImageItem, factor: f32) -> ImageItem {
    blend(&vec![0; item.pixels.len()], item, factor)
}

/// `ImageEnhance.Sharpness`: blend with the `SMOOTH`-filtered image.
pub fn sharpness(item: &ImageItem, factor: f32) -> ImageItem {
    blend(&smooth(item).pixels, item, factor)
}

/// `ImageFilter.SMOOTH`: the 3×3 kernel `[1 1 1; 1 5 1; 1 1 1] / 13` on inner pixels, rounded;
/// the one-pixel border is copied.
pub fn smooth(item: &ImageItem) -> ImageItem {
    let (h, w, c) = (item.height, item.width, item.channels);
    let mut out = item.clone();
    if h < 3 || w < 3 {
        return out;
    }
    let at = |y: usize, x: usize, k: usize| item.pixels[(y * w + x) * c + k] as f32;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for k in 0..c {
                let mut sum = 0.0f32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let weight = if dy == 1 && dx == 1 { 5.0 } else { 1.0 };
                        sum += at(y + dy - 1, x + dx - 1, k) * (weight / 13.0);
                    }
                }
                out.pixels[(y * w + x) * c + k] = (sum + 0.5).clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// `Image.transform(size, AFFINE, (a, b, c, d, e, f), filter, fillcolor=fill)`: the output pixel
/// `(x, y)` samples the input at `(a·(x+½) + b·(y+½) + c, d·(x+½) + e·(y+½) + f)`; points outside
/// the image take `fill`.
pub fn affine(item: &ImageItem, m: [f64; 6], filter: Filter, fill: u8) -> ImageItem {
    let (h, w, c) = (item.height, item.width, item.channels);
    let mut pixels = vec![fill; item.pixels.len()];
    let mut values = [0u8; 4];
    for y in 0..h {
        for x in 0..w {
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            let xin = m[0] * px + m[1] * py + m[2];
            let yin = m[3] * px + m[4] * py + m[5];
            let inside = match filter {
                Filter::Bilinear => bilinear(item, xin, yin, &mut values[..c]),
                Filter::Bicubic => bicubic(item, xin, yin, &mut values[..c]),
            };
            if inside {
                pixels[(y * w + x) * c..][..c].copy_from_slice(&values[..c]);
            }
        }
    }
    ImageItem {
        pixels,
        ..item.clone()
    }
}

fn in_bounds(item: &ImageItem, xin: f64, yin: f64) -> bool {
    xin >= 0.0 && xin < item.width as f64 && yin >= 0.0 && yin < item.height as f64
}

fn clip(v: isize, size: usize) -> usize {
    v.clamp(0, size as isize - 1) as usize
}

fn sample(item: &ImageItem, y: usize, x: isize, k: usize) -> f64 {
    item.pixels[(y * item.width + clip(x, item.width)) * item.channels + k] as f64
}

/// Rows `y0 + 0..n` of the neighbourhood as Pillow reads them: the first row clipped into the
/// image, a later row outside it repeating the row before.
fn rows<const N: usize>(item: &ImageItem, y0: isize) -> [usize; N] {
    let mut rows = [clip(y0, item.height); N];
    for i in 1..N {
        let y = y0 + i as isize;
        rows[i] = if y >= 0 && y < item.height as isize {
            y as usize
        } else {
            rows[i - 1]
        };
    }
    rows
}

fn bilinear(item: &ImageItem, xin: f64, yin: f64, out: &mut [u8]) -> bool {
    if !in_bounds(item, xin, yin) {
        return false;
    }
    let (xs, ys) = (xin - 0.5, yin - 0.5);
    let (x, y) = (xs.floor(), ys.floor());
    let (dx, dy) = (xs - x, ys - y);
    let (x, rows) = (x as isize, rows::<2>(item, y as isize));
    for (k, o) in out.iter_mut().enumerate() {
        let row = |r: usize| {
            let (a, b) = (sample(item, r, x, k), sample(item, r, x + 1, k));
            a + (b - a) * dx
        };
        let (v1, v2) = (row(rows[0]), row(rows[1]));
        let v = v1 + (v2 - v1) * dy;
        *o = v.clamp(0.0, 255.0) as u8;
    }
    true
}

/// Pillow's cubic through four samples (`a = −1`).
fn cubic(v1: f64, v2: f64, v3: f64, v4: f64, d: f64) -> f64 {
    let p2 = -v1 + v3;
    let p3 = 2.0 * (v1 - v2) + v3 - v4;
    let p4 = -v1 + v2 - v3 + v4;
    v2 + d * (p2 + d * (p3 + d * p4))
}

fn bicubic(item: &ImageItem, xin: f64, yin: f64, out: &mut [u8]) -> bool {
    if !in_bounds(item, xin, yin) {
        return false;
    }
    let (xs, ys) = (xin - 0.5, yin - 0.5);
    let (x, y) = (xs.floor(), ys.floor());
    let (dx, dy) = (xs - x, ys - y);
    let (x, rows) = (x as isize - 1, rows::<4>(item, y as isize - 1));
    for (k, o) in out.iter_mut().enumerate() {
        let row = |r: usize| {
            let s = |i: isize| sample(item, r, x + i, k);
            cubic(s(0), s(1), s(2), s(3), dx)
        };
        let v = cubic(row(rows[0]), row(rows[1]), row(rows[2]), row(rows[3]), dy);
        *o = v.clamp(0.0, 255.0) as u8;
    }
    true
}

/// `Image.rotate(degrees, filter, fillcolor=fill)` about the centre, same size (counter-clockwise
/// for positive angles); 0° returns the image unchanged.
pub fn rotate(item: &ImageItem, degrees: f64, filter: Filter, fill: u8) -> ImageItem {
    if degrees.rem_euclid(360.0) == 0.0 {
        return item.clone();
    }
    let round15 = |v: f64| (v * 1e15).round() / 1e15;
    let angle = -degrees.rem_euclid(360.0).to_radians();
    let (cos, sin) = (round15(angle.cos()), round15(angle.sin()));
    let (cx, cy) = (item.width as f64 / 2.0, item.height as f64 / 2.0);
    let (e, f) = (cos * -cx + sin * -cy + cx, -sin * -cx + cos * -cy + cy);
    affine(item, [cos, sin, e, -sin, cos, f], filter, fill)
}
