//! The runs still to train, handed out to parallel workers.
//!
//! A run that needs the searched scales waits until the search has written them; the first
//! failure stops the hand-out. The plan can grow while it trains (a finished convergence check
//! calls for a longer schedule, the checks decide the converged matrix), so when no run is left
//! the queue asks the plan again, and a worker waits while others still train whatever they
//! may call for, instead of leaving its core idle until they finish.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{Plan, Run};

/// How long a worker waits before looking again for a run it can take.
const POLL: Duration = Duration::from_secs(5);

pub(super) struct Queue<'a> {
    plan: &'a Plan,
    state: Mutex<State>,
}

struct State {
    /// Runs to hand out, in the plan's order.
    pending: Vec<Run>,
    /// Every run this queue has taken from the plan (it hands each out once).
    taken: HashSet<PathBuf>,
    /// Runs handed out and not yet done.
    in_flight: usize,
    error: Option<String>,
}

impl<'a> Queue<'a> {
    pub(super) fn new(plan: &'a Plan) -> Self {
        let mut state = State {
            pending: Vec::new(),
            taken: HashSet::new(),
            in_flight: 0,
            error: None,
        };
        state.refill(plan);
        Self {
            plan,
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
                if state.pending.is_empty() && state.in_flight == 0 {
                    return None;
                }
                let hs_pending = state.pending.iter().any(|r| r.method == "hs");
                let ready = state
                    .pending
                    .iter()
                    .position(|r| !r.needs_scales() || (!hs_pending && scales.is_file()));
                if let Some(i) = ready {
                    state.in_flight += 1;
                    return Some(state.pending.remove(i));
                }
            }
            std::thread::sleep(POLL);
        }
    }

    /// A run handed out by [`Queue::next`] is done; a failure stops the hand-out.
    pub(super) fn done(&self, result: Result<(), String>) {
        let mut state = self.state.lock().expect("queue");
        state.in_flight -= 1;
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
    use super::super::tests::{doubling_plan, finish};
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
        let checks = ["repopt-long", "plain-long", "repvgg-long"];
        for run in plan.runs() {
            if !checks.contains(&name(&run).as_str()) {
                finish(&run.dir, 70.0, run.epochs);
            }
        }
        let scales = plan.hs_dir().join("scales.safetensors");
        std::fs::write(&scales, "").unwrap();
        finish(&dir.join("repvgg-long"), 70.1, 20);
        let queue = Queue::new(&plan);
        let first = queue.next(&scales).unwrap();
        let second = queue.next(&scales).unwrap();
        assert_eq!(
            (name(&first), name(&second)),
            ("repopt-long".into(), "plain-long".into())
        );
        // repopt moved by 2 points: its 40-epoch run, while plain still trains.
        finish(&first.dir, 72.0, 20);
        queue.done(Ok(()));
        let third = queue.next(&scales).unwrap();
        assert_eq!(name(&third), "repopt-long-40");
        // plain moved by 0.2: nothing more for it.
        finish(&second.dir, 70.2, 20);
        queue.done(Ok(()));
        // repopt still moves at 40 epochs, the longest check: no converged budget, nothing left.
        finish(&third.dir, 73.0, 40);
        queue.done(Ok(()));
        let last = queue.next(&scales);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(last.is_none(), "{last:?}");
        assert!(queue.result().is_ok());
    }

    /// A failure stops the hand-out and is the queue's result.
    #[test]
    fn a_failure_stops_the_hand_out() {
        let dir = std::env::temp_dir().join(format!("repro-queue-fail-{}", std::process::id()));
        let plan = doubling_plan(&dir);
        let scales = plan.hs_dir().join("scales.safetensors");
        let queue = Queue::new(&plan);
        let first = queue.next(&scales).unwrap();
        assert_eq!(first.method, "hs");
        queue.done(Err("hs failed".into()));
        assert!(queue.next(&scales).is_none());
        assert_eq!(queue.result(), Err("hs failed".into()));
        std::fs::remove_dir_all(&dir).ok();
    }
}
