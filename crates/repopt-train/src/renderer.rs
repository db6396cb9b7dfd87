//! A compact renderer for non-interactive output (logs, CI, pipes): a few progress lines per
//! split and the metrics at its end, as `tracing` events (stderr and the run log). Interactive
//! terminals get Burn's TUI, unless `-q` asked for silence.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::time::Instant;

use burn::train::Interrupter;
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

/// Burn's TUI on a terminal (when not quiet), [`LineRenderer`] otherwise.
pub fn renderer_for_output(
    interrupter: Interrupter,
    checkpoint: Option<usize>,
) -> Box<dyn MetricsRenderer> {
    if std::io::stdout().is_terminal() && !crate::logging::is_quiet() {
        burn::train::renderer::default_renderer(interrupter, checkpoint)
    } else {
        Box::new(LineRenderer::default())
    }
}

/// Prints progress at every quarter of a split and the split's metrics when it ends.
#[derive(Default)]
pub struct LineRenderer {
    names: HashMap<MetricId, String>,
    latest: BTreeMap<String, String>,
    split: String,
    total_items: usize,
    quarter: usize,
    epoch: usize,
    total_epochs: usize,
    started: Option<Instant>,
}

impl LineRenderer {
    fn record(&mut self, state: MetricState) {
        let entry = match state {
            MetricState::Generic(entry) | MetricState::Numeric(entry, _) => entry,
        };
        let name = self
            .names
            .get(&entry.metric_id)
            .cloned()
            .unwrap_or_else(|| "metric".into());
        // Burn formats "epoch <running mean> - batch <last>": keep the running mean.
        let formatted = entry.serialized_entry.formatted;
        let value = formatted
            .split(" - batch")
            .next()
            .unwrap_or(&formatted)
            .trim_start_matches("epoch ")
            .to_string();
        let name = name.replace("Top-K Accuracy @ TopK(5)", "Top-5");
        self.latest.insert(name, value);
    }

    fn metrics_line(&self) -> String {
        self.latest
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl MetricsRendererTraining for LineRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(state);
    }
}

impl MetricsRendererEvaluation for LineRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.record(state);
    }
}

impl MetricsRenderer for LineRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
    }
}

impl TrainingProgressLogger for LineRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _total_items: Option<usize>,
        label: Option<&str>,
    ) {
        // Burn numbers epochs from 1; `starting_epoch` is the first epoch this run trains.
        self.total_epochs = total_epochs;
        self.epoch = starting_epoch.saturating_sub(1);
        let from = if starting_epoch > 1 {
            format!(", resuming at epoch {starting_epoch}")
        } else {
            String::new()
        };
        tracing::info!(
            "{}: {total_epochs} epochs{from}",
            label.unwrap_or("training")
        );
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = split.to_string();
        self.total_items = total_items;
        self.quarter = 0;
        self.latest.clear();
        self.started = Some(Instant::now());
        if split == "train" {
            self.epoch += 1;
        }
    }

    fn update_split(&mut self, items_processed: usize) {
        let quarter = 4 * items_processed / self.total_items.max(1);
        if quarter > self.quarter && quarter < 4 && self.split == "train" {
            self.quarter = quarter;
            tracing::info!(
                "  epoch {}/{} {} {:>3}%  {}",
                self.epoch,
                self.total_epochs,
                self.split,
                25 * quarter,
                self.metrics_line()
            );
        }
    }

    fn end_split(&mut self) {
        let seconds = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
        tracing::info!(
            "epoch {}/{} {} ({:.1} s): {}",
            self.epoch,
            self.total_epochs,
            self.split,
            seconds,
            self.metrics_line()
        );
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for LineRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, name: &str, total_items: usize) {
        self.start_split(name, total_items);
    }
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {
        self.end_split();
    }
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}
