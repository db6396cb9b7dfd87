//! RandAugment as the official ImageNet recipe applies it (`AUG.PRESET raug15`: `randaug.py`'s
//! `RandAugPolicy(magnitude=15)` after RandomResizedCrop and flip).
//!
//! Each image goes through `layers = 2` operations, each drawn uniformly from the sixteen of
//! [`Op::ALL`], each at a level drawn uniformly from `0, 1, …, magnitude − 1` and always applied.
//! A level `l` becomes the operation's argument as in the official `LEVEL_TO_ARG` (ranges at
//! `l = 10`; levels above 10 go beyond them, as the official code does):
//!
//! | operation | argument |
//! |---|---|
//! | Rotate | `±30·l/10` degrees |
//! | ShearX, ShearY | `±0.3·l/10` |
//! | TranslateXRel, TranslateYRel | `±0.45·l/10` of the width / height |
//! | Color, Contrast, Brightness, Sharpness | factor `1.8·l/10 + 0.1` |
//! | Solarize | threshold `⌊256·l/10⌋` |
//! | SolarizeAdd | `+⌊110·l/10⌋` below 128 |
//! | PosterizeTpu | keep `⌊4·l/10⌋` bits (0 bits: black, as the Pillow of the official code) |
//! | Cutout | a gray `(125, 122, 113)` square of side `2·⌊s/2⌋`, `s = ⌊max(2, 40·l/10)⌋` |
//! | AutoContrast, Equalize, Invert | — |
//!
//! The sign `±` is drawn with probability ½; geometric operations resample with Pillow's bilinear
//! or bicubic filter (drawn with probability ½) and fill with gray 128.

use rand::RngExt;

use super::ImageItem;
use super::pil_ops::{self, Filter};
use super::transform::{AugRng, Transform};

/// Gray the geometric operations fill uncovered pixels with.
const FILL: u8 = 128;
/// Colour of the Cutout square.
const CUTOUT_RGB: [u8; 3] = [125, 122, 113];
/// The level at which the official argument ranges end.
const MAX_LEVEL: f64 = 10.0;

/// One RandAugment operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    PosterizeTpu,
    Solarize,
    SolarizeAdd,
    Color,
    Contrast,
    Brightness,
    Sharpness,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
    Cutout,
}

/// The random parts of one operation, drawn before it is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// The level (`0 ≤ level < magnitude`).
    pub level: f64,
    /// Negate the argument of a signed operation.
    pub negate: bool,
    /// Resampling filter of a geometric operation.
    pub filter: Filter,
    /// Centre of the Cutout square, `(x, y)`.
    pub centre: (usize, usize),
}

impl Op {
    /// The official list (`_RAND_TRANSFORMS`), in its order.
    pub const ALL: [Op; 16] = [
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
        Op::Rotate,
        Op::PosterizeTpu,
        Op::Solarize,
        Op::SolarizeAdd,
        Op::Color,
        Op::Contrast,
        Op::Brightness,
        Op::Sharpness,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateXRel,
        Op::TranslateYRel,
        Op::Cutout,
    ];

    /// The operation of the official name (`"ShearX"`, …).
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| format!("{op:?}") == name)
    }

    /// Applies the operation with its random parts given.
    pub fn apply(self, item: &ImageItem, draw: &Draw) -> ImageItem {
        let level = draw.level / MAX_LEVEL;
        let sign = if draw.negate { -1.0 } else { 1.0 };
        let factor = (level * 1.8 + 0.1) as f32;
        let (w, h) = (item.width as f64, item.height as f64);
        let shift = |pixels: f64, x: bool| {
            let m = if x {
                [1.0, 0.0, pixels, 0.0, 1.0, 0.0]
            } else {
                [1.0, 0.0, 0.0, 0.0, 1.0, pixels]
            };
            pil_ops::affine(item, m, draw.filter, FILL)
        };
        match self {
            Op::AutoContrast => pil_ops::autocontrast(item),
            Op::Equalize => pil_ops::equalize(item),
            Op::Invert => pil_ops::lut(item, |v| 255 - v),
            Op::Rotate => pil_ops::rotate(item, sign * level * 30.0, draw.filter, FILL),
            Op::PosterizeTpu => posterize(item, (level * 4.0) as u32),
            Op::Solarize => solarize(item, (level * 256.0) as u32),
            Op::SolarizeAdd => solarize_add(item, (level * 110.0) as u32),
            Op::Color => pil_ops::color(item, factor),
            Op::Contrast => pil_ops::contrast(item, factor),
            Op::Brightness => pil_ops::brightness(item, factor),
            Op::Sharpness => pil_ops::sharpness(item, factor),
            Op::ShearX => shear(item, sign * level * 0.3, true, draw.filter),
            Op::ShearY => shear(item, sign * level * 0.3, false, draw.filter),
            Op::TranslateXRel => shift(sign * level * 0.45 * w, true),
            Op::TranslateYRel => shift(sign * level * 0.45 * h, false),
            Op::Cutout => cutout(item, (level * 40.0).max(2.0) as usize, draw.centre),
        }
    }
}

fn posterize(item: &ImageItem, bits: u32) -> ImageItem {
    if bits >= 8 {
        return item.clone();
    }
    let mask = !((1u32 << (8 - bits)) - 1) as u8;
    pil_ops::lut(item, |v| v & mask)
}

fn solarize(item: &ImageItem, threshold: u32) -> ImageItem {
    pil_ops::lut(item, |v| if (v as u32) < threshold { v } else { 255 - v })
}

fn solarize_add(item: &ImageItem, add: u32) -> ImageItem {
    pil_ops::lut(item, |v| match v < 128 {
        true => (v as u32 + add).min(255) as u8,
        false => v,
    })
}

fn shear(item: &ImageItem, factor: f64, x: bool, filter: Filter) -> ImageItem {
    let m = if x {
        [1.0, factor, 0.0, 0.0, 1.0, 0.0]
    } else {
        [1.0, 0.0, 0.0, factor, 1.0, 0.0]
    };
    pil_ops::affine(item, m, filter, FILL)
}

/// The official `Cutout`: the pixels within `⌊side/2⌋` before (inclusive) and after (exclusive)
/// the centre on both axes, clipped to the image, set to the Cutout colour (its luminance for
/// one-channel images).
pub fn cutout(item: &ImageItem, side: usize, (cx, cy): (usize, usize)) -> ImageItem {
    let half = side / 2;
    let (x0, x1) = (cx.saturating_sub(half), (cx + half).min(item.width));
    let (y0, y1) = (cy.saturating_sub(half), (cy + half).min(item.height));
    let c = item.channels;
    let colour: Vec<u8> = match c {
        3 => CUTOUT_RGB.to_vec(),
        _ => {
            let rgb = ImageItem::new(CUTOUT_RGB.to_vec(), 1, 1, 3, 0);
            vec![pil_ops::luminance(&rgb)[0]; c]
        }
    };
    let mut out = item.clone();
    for y in y0..y1 {
        for x in x0..x1 {
            out.pixels[(y * item.width + x) * c..][..c].copy_from_slice(&colour);
        }
    }
    out
}

/// The official RandAugment policy (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandAugment {
    /// Operations per image (2 in the official policy).
    pub layers: usize,
    /// Levels are drawn from `0..magnitude` (15 in the official `raug15`).
    pub magnitude: u32,
}

impl RandAugment {
    /// The official policy at `magnitude`: two operations per image.
    pub fn new(magnitude: u32) -> Self {
        Self {
            layers: 2,
            magnitude,
        }
    }
}

impl Transform for RandAugment {
    fn apply(&self, mut item: ImageItem, rng: &mut AugRng) -> ImageItem {
        for _ in 0..self.layers {
            let op = Op::ALL[rng.random_range(0..Op::ALL.len())];
            let draw = Draw {
                level: rng.random_range(0..self.magnitude.max(1)) as f64,
                negate: rng.random_bool(0.5),
                filter: match rng.random_bool(0.5) {
                    true => Filter::Bilinear,
                    false => Filter::Bicubic,
                },
                centre: (
                    rng.random_range(0..item.width.max(1)),
                    rng.random_range(0..item.height.max(1)),
                ),
            };
            item = op.apply(&item, &draw);
        }
        item
    }
}
