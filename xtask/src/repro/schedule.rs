//! Which waiting run a free worker takes, and when everything ends.
//!
//! Runs go in the plan's order (the converged matrix before the longer checks), each to the job
//! that frees first. Taken strictly, that order can leave one long run last, training alone on
//! one core for hours while the others idle. So the longest waiting run is moved ahead just
//! when it must: when waiting for one more hand-out would make it end after the even share of
//! all remaining work,
//!
//! ```text
//! t₁ + L > max(L, (Σ busy + Σ waiting) / jobs),
//! ```
//!
//! where `L` is its time and `t₁` the moment the next job frees if this one takes the first
//! waiting run instead. Until then it waits; from then on nothing can end before it anyway.

/// The index (into `waiting`, seconds per run in the plan's order) of the run a free worker
/// takes while the other jobs still need `busy` seconds (those not listed are free): the first, unless the longest must
/// start now (see the module's rule). The first also when a time is unknown (`NaN`).
pub(super) fn pick(busy: &[f64], waiting: &[f64], jobs: usize) -> usize {
    let unknown = busy.iter().chain(waiting).any(|s| s.is_nan());
    let Some((longest, &long)) = waiting
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.total_cmp(b).then(j.cmp(i)))
    else {
        return 0;
    };
    if unknown || longest == 0 {
        return 0;
    }
    // A job with nothing in `busy` is free now.
    let next_free = match busy.len() + 1 < jobs {
        true => 0.0,
        false => busy.iter().copied().fold(waiting[0], f64::min),
    };
    let even_share = (busy.iter().sum::<f64>() + waiting.iter().sum::<f64>()) / jobs.max(1) as f64;
    match next_free + long > long.max(even_share) {
        true => longest,
        false => 0,
    }
}

/// The time until runs in flight needing `busy` seconds and the `waiting` runs (seconds, in
/// the plan's order) are all done on `jobs` jobs, each free job taking the run [`pick`] gives.
/// `NaN` if a time is unknown.
pub(super) fn time_left(busy: &[f64], waiting: &[f64], jobs: usize) -> f64 {
    if busy.iter().chain(waiting).any(|s| s.is_nan()) {
        return f64::NAN;
    }
    let mut ends = busy.to_vec();
    ends.resize(jobs.max(busy.len()).max(1), 0.0);
    let mut waiting = waiting.to_vec();
    while !waiting.is_empty() {
        let (free, &now) = ends
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| a.total_cmp(b))
            .expect("at least one job");
        let others: Vec<f64> = (ends.iter().enumerate())
            .filter(|&(j, _)| j != free)
            .map(|(_, end)| end - now)
            .collect();
        let taken = pick(&others, &waiting, ends.len());
        ends[free] += waiting.remove(taken);
    }
    ends.into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long run last in the plan starts on the hand-out after which waiting would make it
    /// end alone, and not before: here the second of two free jobs takes it.
    #[test]
    fn the_longest_run_starts_when_waiting_would_leave_it_last() {
        assert_eq!(pick(&[0.0], &[10.0, 10.0, 10.0, 40.0], 2), 0);
        assert_eq!(pick(&[10.0], &[10.0, 10.0, 40.0], 2), 2);
        // The other job free as well: the same as the first hand-out above.
        assert_eq!(pick(&[], &[10.0, 10.0, 10.0, 40.0], 2), 0);
        // Far from the end it waits its turn.
        assert_eq!(
            pick(
                &[5.0],
                &[10.0; 20]
                    .iter()
                    .chain(&[40.0])
                    .copied()
                    .collect::<Vec<_>>(),
                2
            ),
            0
        );
        // First in the plan already, or alone: nothing to move.
        assert_eq!(pick(&[0.0], &[40.0, 10.0], 2), 0);
        assert_eq!(pick(&[], &[10.0], 2), 0);
        // One job: the order cannot change when it ends.
        assert_eq!(pick(&[], &[10.0, 40.0], 1), 0);
        // An unknown time keeps the plan's order.
        assert_eq!(pick(&[f64::NAN], &[10.0, 10.0, 40.0], 2), 0);
    }

    /// Taken in the plan's order, the last run of 40 would end at 60; moved ahead just in
    /// time, everything ends at 40, the even share. Runs in flight count from their time left.
    #[test]
    fn the_time_left_follows_the_hand_out() {
        assert_eq!(time_left(&[], &[10.0, 10.0, 10.0, 10.0, 40.0], 2), 40.0);
        assert_eq!(time_left(&[], &[10.0, 10.0, 30.0], 2), 30.0);
        assert_eq!(time_left(&[25.0, 5.0], &[10.0, 10.0], 2), 25.0);
        assert_eq!(time_left(&[], &[5.0, 5.0], 1), 10.0);
        assert_eq!(time_left(&[], &[], 2), 0.0);
        assert!(time_left(&[], &[5.0, f64::NAN], 2).is_nan());
    }
}
