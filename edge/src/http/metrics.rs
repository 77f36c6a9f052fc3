//! `/metrics`: the loop's counters, an inference-latency histogram, per-answer counts and the
//! model's identity, in the Prometheus/OpenMetrics text format (prometheus-client encodes it).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::ModelInfo;
use crate::consumers::{Classified, LoopStatus};

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    classified: Counter,
    captured: Counter,
    dropped: Counter,
    corrupt: Counter,
    reconnects: Counter,
    inference_seconds: Histogram,
    latency_seconds: Histogram,
    answers: Family<Labels, Counter>,
    /// 1 for the model running now, 0 for one a swap replaced.
    model_info: Family<Labels, Gauge>,
    current_model: Labels,
    /// The model the last swap replaced (its series reads 0); older ones are dropped, so that a
    /// box swapped a thousand times does not serve a thousand series.
    replaced_model: Option<Labels>,
    /// 1 while the running model could not be kept as the last good one (`--last-good`).
    last_good_problem: Gauge,
    /// The loop's totals at the last update: its counters are absolute, ours count up by the
    /// difference.
    seen: Totals,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    captured: u64,
    dropped: u64,
    corrupt: u64,
    reconnects: u64,
}

fn model_labels(model: &ModelInfo) -> Labels {
    vec![
        ("name".into(), model.name.clone()),
        ("hash".into(), model.hash.clone()),
        ("precision".into(), model.precision.clone()),
        ("labels".into(), model.labels.join(",")),
    ]
}

impl Metrics {
    pub fn new(model: &ModelInfo) -> Self {
        let mut registry = Registry::with_prefix("flowercam");
        let classified = Counter::default();
        let captured = Counter::default();
        let dropped = Counter::default();
        let corrupt = Counter::default();
        let reconnects = Counter::default();
        // 1 ms to ~8 s: a Pi 4 runs VGG16 in about a second, a desktop in tens of milliseconds.
        let inference_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let latency_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let answers = Family::<Labels, Counter>::default();
        registry.register("frames_classified", "Frames classified", classified.clone());
        registry.register("frames_captured", "Frames captured by the source", captured.clone());
        registry.register("frames_dropped", "Frames replaced by a newer one before inference took them", dropped.clone());
        registry.register("frames_corrupt", "Frames that could not be decoded or answered", corrupt.clone());
        registry.register("source_reconnects", "Times the source was lost and reopened", reconnects.clone());
        registry.register("inference_seconds", "Inference time per frame", inference_seconds.clone());
        registry.register("latency_seconds", "From capture to answer, per frame", latency_seconds.clone());
        registry.register("answers", "Frames by smoothed answer (a class, unknown or unsure)", answers.clone());
        let model_info = Family::<Labels, Gauge>::default();
        registry.register("model_info", "The model being run (1), and the one the last swap replaced (0)", model_info.clone());
        let current_model = model_labels(model);
        model_info.get_or_create(&current_model).set(1);
        let last_good_problem = Gauge::default();
        registry.register(
            "last_good_problem",
            "1 while the running model could not be kept as the last good one (--last-good), else 0",
            last_good_problem.clone(),
        );
        Self {
            registry,
            classified,
            captured,
            dropped,
            corrupt,
            reconnects,
            inference_seconds,
            latency_seconds,
            answers,
            model_info,
            current_model,
            replaced_model: None,
            last_good_problem,
            seen: Totals::default(),
        }
    }

    /// A swap: the new model is the one being run.
    pub fn model(&mut self, model: &ModelInfo) {
        if let Some(older) = self.replaced_model.take() {
            self.model_info.remove(&older);
        }
        self.model_info.get_or_create(&self.current_model).set(0);
        let replaced = std::mem::replace(&mut self.current_model, model_labels(model));
        self.replaced_model = Some(replaced).filter(|r| *r != self.current_model);
        self.model_info.get_or_create(&self.current_model).set(1);
    }

    /// Whether the running model could be kept as the last good one.
    pub fn kept(&mut self, problem: bool) {
        self.last_good_problem.set(i64::from(problem));
    }

    pub fn frame(&mut self, frame: &Classified<'_>) {
        self.classified.inc();
        self.inference_seconds.observe(f64::from(frame.result.inference_ms) / 1000.0);
        self.latency_seconds.observe(f64::from(frame.result.latency_ms) / 1000.0);
        self.answers.get_or_create(&vec![("label".into(), frame.result.smoothed_label.clone())]).inc();
        self.status(frame.status);
    }

    pub fn status(&mut self, s: &LoopStatus) {
        let now = Totals { captured: s.captured, dropped: s.dropped, corrupt: s.corrupt, reconnects: s.reconnects };
        self.captured.inc_by(now.captured.saturating_sub(self.seen.captured));
        self.dropped.inc_by(now.dropped.saturating_sub(self.seen.dropped));
        self.corrupt.inc_by(now.corrupt.saturating_sub(self.seen.corrupt));
        self.reconnects.inc_by(now.reconnects.saturating_sub(self.seen.reconnects));
        self.seen = now;
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(hash: &str) -> ModelInfo {
        ModelInfo {
            name: "m".into(),
            labels: vec!["a".into(), "b".into()],
            hash: hash.into(),
            precision: "f32".into(),
            signed_by: None,
            trusted: false,
            convolutions_left_for_memory: 0,
            unknown_threshold: Some(0.25),
        }
    }

    fn info_lines(metrics: &Metrics) -> Vec<String> {
        metrics.encode().lines().filter(|l| l.starts_with("flowercam_model_info{")).map(str::to_string).collect()
    }

    #[test]
    fn model_info_shows_the_running_model_and_the_one_it_replaced_only() {
        let mut metrics = Metrics::new(&info("h0"));
        for k in 1..=5 {
            metrics.model(&info(&format!("h{k}")));
        }
        let lines = info_lines(&metrics);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("hash=\"h5\"") && l.ends_with(" 1")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("hash=\"h4\"") && l.ends_with(" 0")), "{lines:?}");
        metrics.model(&info("h5"));
        assert_eq!(info_lines(&metrics).len(), 1, "the same model again is one series");
    }
}
