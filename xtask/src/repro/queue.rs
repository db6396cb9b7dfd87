//! The runs still to train, handed out to parallel workers.
//!
//! A run that needs the searched scales waits until the search has written them; the first
//! failure stops the hand-out. The plan can grow while it trains (a finished convergence check
//! calls for a longer schedule, the checks decide the converged matrix), so when no run is left
//! the queue asks the plan again, and a worker waits while others still train whatever they
//! may call for, instead of leaving its core idle until they finish. Among the runs ready to
//! train, a worker takes the first, or the longest when it must start now not to end alone
//! ([`schedule::pick`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::status::Estimates;
use super::{Plan, Run, schedule};

/// How long a worker waits before looking again for a run it can take.
const POLL: Duration = Duration::from_secs(5);

pub(super) struct Queue<'a> {
    plan: &'a Plan,
    jobs: usize,
    state: Mutex<State>,
}

struct State {
    /// Runs to hand out, in the plan's order.
    pending: Vec<Run>,
    /// Every run this queue has taken from the plan (it hands each out once).
    taken: HashSet<PathBuf>,
    /// Runs handed out and not yet done.
    in_flight: Vec<Run>,
    error: Option<String>,
}

impl<'a> Queue<'a> {
    /// A queue for `jobs` workers.
    pub(super) fn new(plan: &'a Plan, jobs: usize) -> Self {
        let mut state = State {
            pending: Vec::new(),
            taken: HashSet::new(),
            in_flight: Vec::new(),
            error: None,
        };
        state.refill(plan);
        Self {
            plan,
            jobs,
            state: Mutex::new(state),
        }
    }

    /// The next run ready to train; waits while only runs that need the scales remain, or
    /// while none remains but runs in flight may still call for more. `None` when the plan is
    /// done or a run failed.
    pub(super) fn next(&self, scales: &Path) -> Option<Run> {
        loop {
            {
                let mut state = self.state.lock().expect("queue");
                if state.error.is_some() {
                    return None;
                }
                if state.pending.is_empty() {
                    state.refill(self.plan);
                }
                if state.pending.is_empty() && state.in_flight.is_empty() {
                    return None;
                }
                if let Some(i) = state.pick(self.plan, scales, self.jobs) {
                    let run = state.pending.remove(i);
                    state.in_flight.push(run.clone());
                    return Some(run);
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// `run`, handed out by [`Queue::next`], is done; a failure stops the hand-out.
    pub(super) fn done(&self, run: &Run, result: Result<(), String>) {
        let mut state = self.state.lock().expect("queue");
        if let Some(i) = state.in_flight.iter().position(|r| r.dir == run.dir) {
            state.in_flight.remove(i);
        }
        if let Err(e) = result {
            state.error.get_or_insert(e);
        }
    }

    /// The first failure, if any.
    pub(super) fn result(&self) -> Result<(), String> {
        match self.state.lock().expect("queue").error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl State {
    /// The index in `pending` of the run to hand out, if one is ready: a run that needs the
    /// scales is ready once the search has written them.
    fn pick(&self, plan: &Plan, scales: &Path, jobs: usize) -> Option<usize> {
        let hs_pending = self.pending.iter().any(|r| r.method == "hs");
        let scales_ready = !hs_pending && scales.is_file();
        let ready: Vec<usize> = (0..self.pending.len())
            .filter(|&i| scales_ready || !self.pending[i].needs_scales())
            .collect();
        if ready.len() < 2 {
            return ready.first().copied();
        }
        let mut estimates = Estimates::new(plan);
        let busy: Vec<f64> = self
            .in_flight
            .iter()
            .map(|r| estimates.seconds_left(r))
            .collect();
        let waiting: Vec<f64> = (ready.iter())
            .map(|&i| estimates.seconds_left(&self.pending[i]))
            .collect();
        Some(ready[schedule::pick(&busy, &waiting, jobs)])
    }

    /// Adds the unfinished runs of `plan` this queue has not taken yet.
    fn refill(&mut self, plan: &Plan) {
        for run in plan.runs() {
            if !run.finished() && self.taken.insert(run.dir.clone()) {
                self.pending.push(run);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{doubling_plan, epoch_log, finish, finish_all_but};
    use super::*;

    fn name(run: &Run) -> String {
        run.dir.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// A check that finishes while another run trains calls for its longer schedule, which the
    /// next free worker gets at once; the queue ends when nothing is pending or in flight.
    /// (Had the checks found a budget, the converged matrix would come next the same way.)
    #[test]
    fn a_free_worker_takes_what_a_finished_check_calls_for() {
        let dir = std::env::temp_dir().join(format!("repro-queue-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        finish_all_but(&plan, &["repopt-long", "plain-long", "repvgg-long"]);
        let scales = plan.hs_dir().join("scales.safetensors");
        std::fs::write(&scales, "").unwrap();
        finish(&dir.join("repvgg-long"), 70.1, 20);
        let queue = Queue::new(&plan, 2);
        let first = queue.next(&scales).unwrap();
        let second = queue.next(&scales).unwrap();
        assert_eq!(
            (name(&first), name(&second)),
            ("repopt-long".into(), "plain-long".into())
        );
        // repopt moved by 2 points: its 40-epoch run, while plain still trains.
        finish(&first.dir, 72.0, 20);
        queue.done(&first, Ok(()));
        let third = queue.next(&scales).unwrap();
        assert_eq!(name(&third), "repopt-long-40");
        // plain moved by 0.2: nothing more for it.
        finish(&second.dir, 70.2, 20);
        queue.done(&second, Ok(()));
        // repopt still moves at 40 epochs, the longest check: no converged budget, nothing left.
        finish(&third.dir, 73.0, 40);
        queue.done(&third, Ok(()));
        let last = queue.next(&scales);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(last.is_none(), "{last:?}");
        assert!(queue.result().is_ok());
    }

    /// Runs ready together go in the plan's order, except a long one that would otherwise end
    /// alone: of seed 2's repopt, plain and RepVGG (100, 100 and 200 s at the measured rates),
    /// the second worker takes RepVGG, so both end at 200 s rather than 300.
    #[test]
    fn a_long_run_starts_early_enough_not_to_end_alone() {
        let dir = std::env::temp_dir().join(format!("repro-queue-long-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        finish_all_but(&plan, &["repopt-s2", "plain-s2", "repvgg-s2"]);
        epoch_log(&dir, "repopt-s0", &[10.0; 10]);
        epoch_log(&dir, "repvgg-s0", &[20.0; 10]);
        let scales = plan.hs_dir().join("scales.safetensors");
        std::fs::write(&scales, "").unwrap();
        let queue = Queue::new(&plan, 2);
        let first = queue.next(&scales).unwrap();
        let second = queue.next(&scales).unwrap();
        queue.done(&first, Ok(()));
        let third = queue.next(&scales).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let names = [&first, &second, &third].map(name);
        assert_eq!(names, ["repopt-s2", "repvgg-s2", "plain-s2"]);
    }

    /// A failure stops the hand-out and is the queue's result.
    #[test]
    fn a_failure_stops_the_hand_out() {
        let dir = std::env::temp_dir().join(format!("repro-queue-fail-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        let scales = plan.hs_dir().join("scales.safetensors");
        let queue = Queue::new(&plan, 2);
        let first = queue.next(&scales).unwrap();
        assert_eq!(first.method, "hs");
        queue.done(&first, Err("hs failed".into()));
        assert!(queue.next(&scales).is_none());
        assert_eq!(queue.result(), Err("hs failed".into()));
        std::fs::remove_dir_all(&dir).ok();
    }
}
