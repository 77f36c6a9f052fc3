//! What a trained model is: everything a runtime or a person needs to use it correctly.

use serde::{Deserialize, Serialize};

use crate::preprocess::{Convention, Preprocessing};

/// The classifier on top of the VGG16 trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// Global average pool -> Dense K: a logistic regression on the pooled features, fitted to
    /// convergence with an L2 penalty. The default: it generalizes best to photos from elsewhere.
    Linear,
    /// Global average pool -> Dense 256 -> ReLU -> Dropout -> Dense K. Small and size-agnostic.
    Gap,
    /// The original recipe: Flatten -> Dense 1024 ReLU -> Dropout 0.5 -> Dense 1024 ReLU -> Dense K.
    Flatten,
}

crate::named_enum!(HeadKind, "head", serde, {
    HeadKind::Linear => "linear",
    HeadKind::Gap => "gap",
    HeadKind::Flatten => "flatten",
});

impl HeadKind {
    /// Whether the head starts with a global average pool of the feature map (else it flattens it).
    pub fn pools_globally(self) -> bool {
        self != HeadKind::Flatten
    }
}

/// The arithmetic of the exported trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Float32 throughout: the trainer's own arithmetic, to rounding.
    F32,
    /// The 13 convolutions and the max-pools in 8 bits (uint8 activations, int8 weights with one
    /// scale per layer), calibrated on training images; preprocessing, head and Softmax stay float32.
    Int8,
}

crate::named_enum!(Precision, "precision", serde, {
    Precision::F32 => "f32",
    Precision::Int8 => "int8",
});

impl Precision {
    /// What the export's parity gate requires of this precision.
    pub fn gate(self) -> GateRule {
        match self {
            Precision::F32 => GateRule { tolerance: crate::PROBABILITY_TOLERANCE, min_class_agreement: 1.0, max_accuracy_drop: 0.0 },
            Precision::Int8 => {
                GateRule { tolerance: crate::INT8_PROBABILITY_TOLERANCE, min_class_agreement: 0.99, max_accuracy_drop: 0.01 }
            }
        }
    }
}

/// What an export, run by tract, must show against the trainer's own model on the validation
/// images before it may exist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateRule {
    /// Largest |difference| of any probability on any image.
    pub tolerance: f32,
    /// Least share of images given the same class.
    pub min_class_agreement: f32,
    /// Largest loss of validation accuracy, as a share of the images.
    pub max_accuracy_drop: f32,
}

impl GateRule {
    /// Whether an export with these figures may exist. `accuracy_drop` is the trainer's
    /// validation accuracy minus the export's (negative when the export does better).
    pub fn admits(&self, max_abs_diff: f32, class_agreement: f32, accuracy_drop: f32) -> bool {
        // Shares of a whole number of images: an epsilon keeps "1 of 100" from failing "1%" by rounding.
        let eps = 1e-6;
        max_abs_diff <= self.tolerance && class_agreement + eps >= self.min_class_agreement && accuracy_drop <= self.max_accuracy_drop + eps
    }
}

/// How the exported graph's `unknown_score` output is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenSetMethod {
    /// 1 - the largest cosine similarity between the image's pooled trunk features and those of
    /// the training images stored in the graph (Sun et al. 2022, "Out-of-distribution detection
    /// with deep nearest neighbors"). 0: a training image's twin; near 1: like none of them.
    KnnCosine,
    /// The same on a richer descriptor: blocks 4 and 5 of the trunk, each pooled by average and
    /// by max, the cosine taken per part and averaged. Refuses more of what is neither class at
    /// the same cost in targets (BENCHMARKS.md, "Open-set scores tried").
    KnnCosineBlocks45,
    /// The same, lowered by the calibrated head's evidence for its answer: `score -`
    /// [`EVIDENCE_WEIGHT`] ` * clamp(ln(p / (1 - p)), 0,` [`EVIDENCE_CAP`]`)` with `p` the top
    /// probability. The threshold is set on held-out photos scored by heads that never saw them.
    KnnCosineBlocks45Evidence,
}

crate::named_enum!(OpenSetMethod, "open-set method", serde, {
    OpenSetMethod::KnnCosine => "knn-cosine",
    OpenSetMethod::KnnCosineBlocks45 => "knn-cosine-blocks-4-5",
    OpenSetMethod::KnnCosineBlocks45Evidence => "knn-cosine-blocks-4-5-evidence",
});

impl OpenSetMethod {
    /// The lowest score the method gives (a twin of a reference; with the evidence, one the head
    /// is sure of): a threshold below it refuses everything.
    pub const fn lowest_score(self) -> f32 {
        match self {
            OpenSetMethod::KnnCosine | OpenSetMethod::KnnCosineBlocks45 => 0.0,
            OpenSetMethod::KnnCosineBlocks45Evidence => -EVIDENCE_WEIGHT * EVIDENCE_CAP,
        }
    }
}

/// How much one nat of the head's evidence lowers the score of
/// [`OpenSetMethod::KnnCosineBlocks45Evidence`].
pub const EVIDENCE_WEIGHT: f32 = 0.04;

/// Evidence beyond this many nats counts as this many: past it a head is as sure as it gets,
/// and one very sure head must not carry any photo in.
pub const EVIDENCE_CAP: f32 = 5.0;

/// Keeps the evidence's log-odds finite when a probability rounds to 1 (or to 0) in f32: the
/// trainer's computation and its graph use the same floor.
pub const PROBABILITY_FLOOR: f32 = 1e-7;

/// The range of the open-set score (`1 - cosine`, less the head's evidence:
/// [`OpenSetMethod`]), with room for rounding.
pub const UNKNOWN_SCORE_RANGE: std::ops::RangeInclusive<f32> = OpenSetMethod::KnnCosineBlocks45Evidence.lowest_score() - 1e-3..=2.001;

/// "None of these": the graph's second output and where the edge draws the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSet {
    pub method: OpenSetMethod,
    /// Views of training images (each photo, and the augmented views the head trained on) whose
    /// features the graph compares against.
    pub references: u32,
    /// Above this score the answer is `unknown`. Set at training so that
    /// [`OpenSet::target_acceptance`] of held-out training photos are accepted.
    pub threshold: f32,
    /// The share of held-out photos of the trained classes accepted at `threshold`.
    pub target_acceptance: f32,
}

/// Where the ImageNet weights came from, and what the trunk costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneInfo {
    /// File name the weights were read from.
    pub name: String,
    /// SHA-256 of the 13 conv layers' raw weights (each W then b, little-endian f32), in hex.
    pub weights_sha256: String,
    pub convention: Convention,
    /// Filters in each of the 13 convolutions (VGG16: 64, 64, 128, 128, 256 x3, 512 x6).
    #[serde(deserialize_with = "crate::bounded::convolutions")]
    pub channels: Vec<u32>,
    /// Multiply-adds of one frame through the trunk at the bundle's input size.
    pub macs: u64,
    /// What `trainer slim` made this trunk from; `None` for a trunk used as it came.
    pub slimmed_from: Option<Slimming>,
}

/// A slim trunk's teacher: which full trunk it stands in for, and what it gave up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slimming {
    /// The teacher's [`BackboneInfo::weights_sha256`].
    pub teacher_sha256: String,
    /// The teacher's filters in each convolution; the slim trunk kept [`BackboneInfo::channels`] of them.
    #[serde(deserialize_with = "crate::bounded::convolutions")]
    pub teacher_channels: Vec<u32>,
    /// The teacher's multiply-adds per frame at the bundle's input size.
    pub teacher_macs: u64,
    /// Photos the slim trunk was trained on to give the teacher's features (0: pruned only).
    pub distilled_on: u32,
}

/// How training went, as measured by the trainer on its own validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub train_images: u32,
    pub val_images: u32,
    pub epochs_run: u32,
    pub best_epoch: u32,
    pub val_accuracy: f32,
    pub val_loss: f32,
    pub train_accuracy: f32,
    pub train_loss: f32,
    /// "flex" or "libtorch"
    pub backend: String,
    pub device: String,
}

impl TrainingSummary {
    /// For a model exported without training (fixtures, benchmarks): zeros, flex on cpu.
    pub fn untrained(val_images: u32) -> Self {
        Self {
            train_images: 0,
            val_images,
            epochs_run: 0,
            best_epoch: 0,
            val_accuracy: 0.0,
            val_loss: 0.0,
            train_accuracy: 0.0,
            train_loss: 0.0,
            backend: "flex".into(),
            device: "cpu".into(),
        }
    }
}

/// The export parity gate's figures: tract running the exported graph vs the trainer's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityReport {
    pub images: u32,
    pub max_abs_diff: f32,
    pub mean_abs_diff: f32,
    /// Share of images on which both picked the same class (1.0 is required of an f32 export).
    pub argmax_agreement: f32,
    /// Validation accuracy of the exported graph in tract: what the device will deliver. Equal to
    /// the trainer's for f32; an int8 export may gain or lose an image or two.
    pub accuracy: f32,
    /// The largest |diff| the gate accepted ([`GateRule::tolerance`]); `edge selftest` holds
    /// the device to it too.
    pub tolerance: f32,
    /// Largest |difference| of the open-set score, tract vs the trainer, held to the same tolerance.
    pub unknown_score_max_abs_diff: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// K-fold cross-validation of the head on the training and validation photos (near-duplicates
/// kept in one fold), and the temperature fitted on its out-of-fold predictions.
pub struct CrossValidation {
    pub folds: usize,
    /// Accuracy of each fold's held-out photos.
    pub fold_accuracy: Vec<f32>,
    pub mean_accuracy: f32,
    /// Standard deviation of the fold accuracies.
    pub spread: f32,
    /// The temperature that minimizes the out-of-fold negative log-likelihood; the exported
    /// logits are divided by it.
    pub temperature: f32,
    /// Expected calibration error of the out-of-fold predictions before and after the temperature.
    pub ece_before: f32,
    pub ece_after: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// Class names, in the order of the model's output.
    #[serde(deserialize_with = "crate::bounded::labels")]
    pub labels: Vec<String>,
    pub preprocessing: Preprocessing,
    pub backbone: BackboneInfo,
    pub head: HeadKind,
    pub precision: Precision,
    pub training: TrainingSummary,
    pub parity: ParityReport,
    /// The open-set score and its threshold (`None`: the graph has no `unknown_score` output).
    pub open_set: Option<OpenSet>,
    /// Cross-validated accuracy and the temperature folded into the graph (`linear` head).
    pub cross_validation: Option<CrossValidation>,
    /// Seconds since the Unix epoch when the bundle was exported.
    pub created_unix: u64,
    pub trainer_version: String,
}

/// The longest label: a class folder's name, which file systems cap at 255 bytes.
pub const MAX_LABEL_BYTES: usize = 255;

/// A class name as the trainer takes it from a folder and the edge prints it, names a folder
/// with (`--save-frames DIR/<label>/`) and sends it on: a plain, non-hidden folder name that is
/// not one of the answers that mean "no class" ([`crate::answer::UNKNOWN`], [`crate::answer::UNSURE`]).
pub fn check_label(label: &str) -> Result<(), String> {
    let problem = if label.is_empty() {
        "is empty"
    } else if label.len() > MAX_LABEL_BYTES {
        "is longer than 255 bytes"
    } else if label.chars().any(|c| crate::text::unprintable(c) || c == '/' || c == '\\') {
        "holds a path separator or a control character"
    } else if label.starts_with('.') || label.trim() != label {
        "starts with a dot or has spaces at an end"
    } else if [crate::answer::UNKNOWN, crate::answer::UNSURE].contains(&label) {
        "is the answer the edge gives when no class fits; rename the class"
    } else {
        return Ok(());
    };
    Err(format!("class name {label:?} {problem}"))
}

/// The longest self-check name or signer name a bundle may carry: a photo's path as the trainer
/// names it (with `--data` repeated, the whole path), within Linux's PATH_MAX.
pub const MAX_PATH_NAME_BYTES: usize = 4096;

/// A name a bundle carries and the edge prints, logs and serves (the model's, a self-check
/// image's, the signer's): one line of at most `max_bytes` with no control character, so that
/// it cannot forge a log line, move a terminal's cursor or fill a status page.
pub fn check_name(what: &str, name: &str, max_bytes: usize) -> Result<(), String> {
    if name.len() > max_bytes {
        Err(format!("{what} is longer than {max_bytes} bytes"))
    } else if name.chars().any(crate::text::unprintable) {
        Err(format!("{what} {name:?} holds a control character"))
    } else {
        Ok(())
    }
}

/// `name` made one that [`check_name`] takes at `max_bytes`: [`crate::text::escaped`], and a
/// long one cut at its start, so its end (a photo's own file name) stays.
pub fn printable_name(name: &str, max_bytes: usize) -> String {
    let text = crate::text::escaped(name);
    let cut = text.char_indices().map(|(at, _)| at).find(|&at| text.len() - at <= max_bytes).unwrap_or(text.len());
    text[cut..].to_string()
}

impl Manifest {
    /// What the rest of the product takes for granted of a manifest, checked on every bundle
    /// read (a crafted or damaged one may hold anything that deserializes): labels that are
    /// plain, distinct class names; an input size the trainer could have written; finite
    /// thresholds and tolerances.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("model name is empty".into());
        }
        // Every text the edge or `trainer inspect` prints, serves or logs.
        let teacher = self.backbone.slimmed_from.as_ref().map_or("", |s| s.teacher_sha256.as_str());
        for (what, text) in [
            ("model name", self.name.as_str()),
            ("backbone name", &self.backbone.name),
            ("backbone weights hash", &self.backbone.weights_sha256),
            ("teacher hash", teacher),
            ("training backend", &self.training.backend),
            ("training device", &self.training.device),
            ("trainer version", &self.trainer_version),
        ] {
            check_name(what, text, MAX_LABEL_BYTES)?;
        }
        let labels = &self.labels;
        if labels.len() < 2 {
            return Err(format!("manifest lists {} classes; a classifier needs at least 2", labels.len()));
        }
        for (i, label) in labels.iter().enumerate() {
            check_label(label)?;
            if labels[..i].contains(label) {
                return Err(format!("class name {label:?} appears twice"));
            }
        }
        Preprocessing::new(self.preprocessing.input_size, self.preprocessing.resize)?;
        if let Some(o) = &self.open_set
            && (!o.threshold.is_finite() || !(0.0..=1.0).contains(&o.target_acceptance) || o.references == 0)
        {
            return Err(format!(
                "open-set threshold {} / acceptance {} / {} references: not a threshold the trainer writes",
                o.threshold, o.target_acceptance, o.references
            ));
        }
        if !(self.parity.tolerance.is_finite() && self.parity.tolerance >= 0.0) {
            return Err(format!("parity tolerance {} is not a finite, non-negative number", self.parity.tolerance));
        }
        Ok(())
    }

    /// The exported graph's input shape: one RGB square, channels last, uint8.
    pub fn input_shape(&self) -> [usize; 4] {
        let s = self.preprocessing.input_size as usize;
        [1, s, s, 3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_printable_line_and_any_name_can_be_made_one() {
        assert!(check_name("model name", "daffodil_coltsfoot v2", 255).is_ok());
        assert!(check_name("model name", "evil\n\x1b]0;title\x07", 255).unwrap_err().contains("control character"));
        assert!(check_name("model name", &"N".repeat(256), 255).unwrap_err().contains("longer than 255"));
        for hidden in ["evil\u{202e}txt.exe", "a\u{2028}b"] {
            assert!(check_name("model name", hidden, 255).is_err(), "{hidden:?}");
            assert!(check_name("x", &printable_name(hidden, 255), 255).is_ok());
        }
        assert_eq!(printable_name("a\tb\u{1b}c.jpg", 255), "a\\tb\\u{1b}c.jpg");
        assert_eq!(printable_name("/a/very/long/path/daffodil/x.jpg", 15), "/daffodil/x.jpg", "the end is kept");
        for odd in ["tab\there", &"é".repeat(200), &"\u{7}".repeat(100)] {
            let made = printable_name(odd, 255);
            assert!(check_name("x", &made, 255).is_ok(), "{made:?}");
        }
    }

    #[test]
    fn f32_gate_wants_everything_and_int8_gate_allows_one_percent() {
        let f32_gate = Precision::F32.gate();
        assert!(f32_gate.admits(1e-5, 1.0, 0.0));
        assert!(!f32_gate.admits(1e-3, 1.0, 0.0), "beyond tolerance");
        assert!(!f32_gate.admits(1e-5, 0.99, 0.0), "one class changed");
        assert!(!f32_gate.admits(f32::INFINITY, 1.0, 0.0), "NaN outputs count as infinitely far");
        let int8 = Precision::Int8.gate();
        assert!(int8.admits(0.12, 272.0 / 273.0, 1.0 / 273.0), "one image of 273 changed (and lost)");
        assert!(int8.admits(0.1, 0.99, 0.01), "exactly at the limits");
        assert!(!int8.admits(0.1, 0.98, 0.0), "2% of classes changed");
        assert!(!int8.admits(0.1, 0.99, 0.02), "2% accuracy lost");
        assert!(int8.admits(0.1, 0.99, -0.01), "an export that does better passes");
        assert!(!int8.admits(0.2, 1.0, 0.0), "beyond the int8 tolerance");
    }
}
