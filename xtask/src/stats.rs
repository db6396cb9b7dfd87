//! The statistics of the reproduction: mean, sample standard deviation, and Welch's confidence
//! interval for a difference of two means.
//!
//! For samples `a` (n₁ values) and `b` (n₂ values) with sample variances `s₁²`, `s₂²`:
//!
//! ```text
//! d  = mean(a) − mean(b)
//! se = sqrt(s₁²/n₁ + s₂²/n₂)
//! ν  = se⁴ / ((s₁²/n₁)²/(n₁−1) + (s₂²/n₂)²/(n₂−1))      (Welch–Satterthwaite)
//! CI = d ± t₀.₉₇₅(ν) · se
//! ```
//!
//! `t₀.₉₇₅(ν)` is the Student-t quantile, found by bisection on the t distribution's CDF, which
//! is written with the regularised incomplete beta function.
//!
//! When the two samples come in pairs (the same seed: the same data order and, where the
//! methods allow, the same initial weights), the paired interval works on the n differences
//! `dᵢ = aᵢ − bᵢ`, removing what the pair shares:
//!
//! ```text
//! CI = mean(d) ± t₀.₉₇₅(n − 1) · std(d) / √n
//! ```

/// Mean of `values` (NaN when empty).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Median of `values` (the mean of the middle two for an even count; NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Sample standard deviation (n − 1 in the denominator; 0 for a single value).
pub fn std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    let var = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    var.sqrt()
}

/// A difference of means with its 95 % Welch interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// `mean(a) − mean(b)`.
    pub estimate: f64,
    /// Lower end of the 95 % interval.
    pub low: f64,
    /// Upper end of the 95 % interval.
    pub high: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
}

/// Welch's 95 % interval for `mean(a) − mean(b)`; `None` with fewer than 2 values on a side.
pub fn welch(a: &[f64], b: &[f64]) -> Option<Difference> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (va, vb) = (
        std(a).powi(2) / a.len() as f64,
        std(b).powi(2) / b.len() as f64,
    );
    let estimate = mean(a) - mean(b);
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return Some(Difference {
            estimate,
            low: estimate,
            high: estimate,
            df: f64::INFINITY,
        });
    }
    let df =
        (va + vb).powi(2) / (va.powi(2) / (a.len() - 1) as f64 + vb.powi(2) / (b.len() - 1) as f64);
    let t = student_t_quantile(0.975, df);
    Some(Difference {
        estimate,
        low: estimate - t * se,
        high: estimate + t * se,
        df,
    })
}

/// The paired 95 % interval of `mean(a − b)` over pairs `(aᵢ, bᵢ)`; `None` with fewer than 2.
pub fn paired(pairs: &[(f64, f64)]) -> Option<Difference> {
    if pairs.len() < 2 {
        return None;
    }
    let d: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
    let (estimate, se) = (mean(&d), std(&d) / (d.len() as f64).sqrt());
    let df = (d.len() - 1) as f64;
    let half = student_t_quantile(0.975, df) * se;
    Some(Difference {
        estimate,
        low: estimate - half,
        high: estimate + half,
        df,
    })
}

/// The `p` quantile (0.5 < p < 1) of Student's t with `df` degrees of freedom.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    while student_t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// CDF of Student's t: `1 − ½ I_{ν/(ν+t²)}(ν/2, ½)` for `t ≥ 0`, symmetric below.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * incomplete_beta(x, 0.5 * df, 0.5);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The regularised incomplete beta function `I_x(a, b)` (continued fraction, Lentz's method).
fn incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..500 {
        let m = m as f64;
        for numerator in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + numerator * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + numerator / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// `ln Γ(x)` (Lanczos, g = 7).
fn ln_gamma(x: f64) -> f64 {
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = COEF[1..]
        .iter()
        .enumerate()
        .fold(COEF[0], |acc, (i, c)| acc + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quantiles from statistical tables.
    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        for (df, want) in [
            (1.0, 12.706_205),
            (2.0, 4.302_653),
            (4.0, 2.776_445),
            (10.0, 2.228_139),
            (30.0, 2.042_272),
            (1e6, 1.959_966),
        ] {
            let got = student_t_quantile(0.975, df);
            assert!((got - want).abs() < 1e-5, "df {df}: {got} vs {want}");
        }
    }

    #[test]
    fn paired_interval_by_hand() {
        // Differences 0.75, 0.84, 1.03: mean 0.873…, std 0.1429…, t(2) = 4.3027.
        let d = paired(&[(72.08, 71.33), (72.98, 72.14), (72.73, 71.70)]).unwrap();
        let (m, sd) = (0.873_333_333, 0.142_945_094);
        let half = 4.302_652_73 * sd / 3f64.sqrt();
        assert!((d.estimate - m).abs() < 1e-6, "{d:?}");
        assert!(
            (d.low - (m - half)).abs() < 1e-5 && (d.high - (m + half)).abs() < 1e-5,
            "{d:?}"
        );
        assert_eq!(d.df, 2.0);
        assert!(paired(&[(1.0, 0.0)]).is_none());
    }

    #[test]
    fn sample_statistics() {
        assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
        assert_eq!(std(&[1.0, 2.0, 3.0]), 1.0);
        assert_eq!(std(&[5.0]), 0.0);
    }

    /// Welch's interval, against a hand computation: a = (1, 2, 3), b = (4, 5, 6): d = −3,
    /// se = sqrt(1/3 + 1/3), ν = (2/3)² / (2·(1/3)²/2) = 4, t₀.₉₇₅(4) = 2.776445.
    #[test]
    fn welch_interval_by_hand() {
        let d = welch(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
        assert_eq!(d.estimate, -3.0);
        assert!((d.df - 4.0).abs() < 1e-12, "{}", d.df);
        let half = 2.776_445 * (2.0f64 / 3.0).sqrt();
        assert!((d.high - (-3.0 + half)).abs() < 1e-5, "{d:?}");
        assert!((d.low - (-3.0 - half)).abs() < 1e-5, "{d:?}");
        assert!(welch(&[1.0], &[2.0, 3.0]).is_none());
    }
}
