//! The RandAugment operations against Pillow's own output of the official `randaug.py`
//! (`tests/fixtures/randaug`, made by its `make_reference.py`), and the policy's draws.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use repopt_train::data::ImageItem;
use repopt_train::data::pil_ops::Filter;
use repopt_train::data::randaug::{self, Draw, Op, RandAugment};
use repopt_train::data::transform::{AugRng, Transform};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/randaug")
}

fn load(file: &Path) -> ImageItem {
    let rgb = image::open(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .to_rgb8();
    let (w, h) = rgb.dimensions();
    ImageItem::new(rgb.into_raw(), h as usize, w as usize, 3, 0)
}

/// Largest difference and number of differing values.
fn compare(a: &ImageItem, b: &ImageItem) -> (u8, usize) {
    assert_eq!((a.height, a.width), (b.height, b.width));
    a.pixels
        .iter()
        .zip(&b.pixels)
        .fold((0, 0), |(max, n), (x, y)| {
            let d = x.abs_diff(*y);
            (max.max(d), n + usize::from(d > 0))
        })
}

#[test]
fn every_operation_matches_pillow() {
    let dir = fixtures();
    let input = load(&dir.join("input.png"));
    let text = std::fs::read_to_string(dir.join("cases.json")).expect("cases.json");
    let cases: serde_json::Value = serde_json::from_str(&text).expect("json");
    let cases = cases["cases"].as_array().expect("cases");
    assert!(cases.len() > 100, "{} cases", cases.len());
    let mut seen = std::collections::BTreeSet::new();
    let mut report = Vec::new();
    for case in cases {
        let name = case["op"].as_str().expect("op");
        let op = Op::from_name(name).unwrap_or_else(|| panic!("unknown op {name}"));
        let draw = Draw {
            level: case["level"].as_f64().expect("level"),
            negate: case["negate"].as_bool().expect("negate"),
            filter: match case["filter"].as_str() {
                Some("bicubic") => Filter::Bicubic,
                _ => Filter::Bilinear,
            },
            centre: (0, 0),
        };
        let expected = load(&dir.join(case["file"].as_str().expect("file")));
        let (max, n) = compare(&op.apply(&input, &draw), &expected);
        report.push(format!("{}: max {max}, {n} values differ", case["file"]));
        seen.insert(name.to_string());
        // Bit-exact: the same lookup tables, float precisions, truncations and edge rules.
        assert!(max == 0 && n == 0, "{}", report.join("\n"));
    }
    assert_eq!(seen.len(), Op::ALL.len() - 1, "all but Cutout: {seen:?}");
    println!("{}", report.join("\n"));
}

#[test]
fn posterize_to_zero_bits_is_black_as_the_official_pillow() {
    let input = load(&fixtures().join("input.png"));
    let draw = Draw {
        level: 2.0, // ⌊4·0.2⌋ = 0 bits
        negate: false,
        filter: Filter::Bilinear,
        centre: (0, 0),
    };
    let out = Op::PosterizeTpu.apply(&input, &draw);
    assert!(out.pixels.iter().all(|&v| v == 0));
}

#[test]
fn cutout_covers_the_official_box_clipped_to_the_image() {
    let item = ImageItem::new(vec![7; 10 * 6 * 3], 6, 10, 3, 0);
    // side 5: ⌊5/2⌋ = 2 before (inclusive) and after (exclusive) the centre (x 9, y 1).
    let out = randaug::cutout(&item, 5, (9, 1));
    for y in 0..6 {
        for x in 0..10 {
            let pixel = &out.pixels[(y * 10 + x) * 3..][..3];
            let inside = (7..10).contains(&x) && y < 3;
            let expected: &[u8] = if inside { &[125, 122, 113] } else { &[7, 7, 7] };
            assert_eq!(pixel, expected, "x {x}, y {y}");
        }
    }
    let gray = ImageItem::new(vec![0; 16], 4, 4, 1, 0);
    let out = randaug::cutout(&gray, 2, (1, 1));
    // side 2: the 2×2 pixels x, y ∈ {0, 1}.
    assert_eq!(out.pixels.iter().filter(|&&v| v == 122).count(), 4);
}

#[test]
fn the_policy_is_seeded_and_keeps_the_shape() {
    let input = load(&fixtures().join("input.png"));
    let policy = RandAugment::new(15);
    let run = |seed| {
        let mut rng = AugRng::seed_from_u64(seed);
        (0..40)
            .map(|_| policy.apply(input.clone(), &mut rng))
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(
        a.iter()
            .all(|o| (o.height, o.width, o.channels) == (28, 40, 3))
    );
    // Two operations per image at random levels: almost every image changes.
    assert!(a.iter().filter(|o| **o != input).count() >= 30);
}
