//! The deployable file: a versioned, hashed, optionally signed container of manifest, ONNX graph
//! and self-checks.
//!
//! Layout: 8 magic bytes, the format version (u32 little-endian), then the postcard encoding of
//! [`Bundle`]. The version is read before anything else, so a runtime that meets a newer format
//! says so instead of misreading it. Reading checks the ONNX's SHA-256 and the content digest
//! (manifest + ONNX hash + self-checks), so no part can change unnoticed by accident, and a
//! signature, when there is one (see [`crate::signing`]), so no part can change on purpose.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::Manifest;
use crate::signing::{SecretKey, Signature, SignatureError, TrustedKeys};

pub const MAGIC: &[u8; 8] = b"FLWRCAM\0";
/// 2: the manifest states the export's precision and the gate's tolerance.
/// 3: the manifest states the open-set score and its threshold; the graph may have a second output.
/// 4: a content digest over the manifest, the ONNX hash and the self-checks, and a signature.
/// 5: the manifest states the trunk's filters and multiply-adds, and a slim trunk's teacher.
/// 6: the open-set score may be lowered by the head's evidence (a manifest an older edge cannot
///    read); version 5 bundles read as before.
/// A bundle is written in the oldest version that holds it ([`needed_version`]), so an edge
/// of an earlier build keeps reading every bundle it could run.
pub const FORMAT_VERSION: u32 = 6;

/// The oldest version this build reads: 5's layout is 6's.
pub const OLDEST_READ_VERSION: u32 = 5;

/// The oldest format version that can hold `manifest`, the one it is written in: 6 for a score
/// lowered by the head's evidence (an edge of a version-5 build knows no such method), 5
/// otherwise (5's layout is 6's). Read, either header is taken for either content.
pub fn needed_version(manifest: &Manifest) -> u32 {
    match manifest.open_set.as_ref().map(|o| o.method) {
        Some(crate::manifest::OpenSetMethod::KnnCosineBlocks45Evidence) => 6,
        _ => 5,
    }
}

/// One validation image, already prepared (RGB square), with the probabilities the trainer's
/// model gave it: the device re-runs it to prove it computes what the trainer computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfCheck {
    pub name: String,
    pub label: String,
    /// `input_size * input_size * 3` bytes, RGB, row-major.
    pub rgb: Vec<u8>,
    pub expected: Vec<f32>,
    /// The open-set score tract computed at export, when the graph has one.
    pub expected_unknown_score: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub manifest: Manifest,
    pub onnx: Vec<u8>,
    pub onnx_sha256: [u8; 32],
    #[serde(deserialize_with = "crate::bounded::self_checks")]
    pub self_checks: Vec<SelfCheck>,
    /// SHA-256 over the manifest, the ONNX hash and the self-checks: what a signature signs.
    pub content_sha256: [u8; 32],
    pub signature: Option<Signature>,
    /// The format version the bundle was read in, or will be written in ([`needed_version`]); not
    /// part of the serialized body, which the header's version precedes.
    #[serde(skip)]
    pub format_version: u32,
}

/// The largest bundle read: a float32 VGG16 bundle is about 60 MB, with room for large heads and
/// many open-set references.
pub const MAX_BUNDLE_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: cannot read: {cause}")]
    Io { path: PathBuf, cause: std::io::Error },
    #[error("{path}: not a model bundle (bad magic bytes){hint}")]
    NotABundle { path: PathBuf, hint: &'static str },
    #[error(
        "{path}: bundle format version {found} is not supported (this build reads versions {OLDEST_READ_VERSION} to {FORMAT_VERSION}); {}",
        if *found < OLDEST_READ_VERSION { "re-export it with this trainer (`trainer export --run RUN --out NAME`)" } else { "use a matching edge build" }
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("{path}: bundle is truncated or corrupt: {cause}{}", if matches!(cause, postcard::Error::SerdeDeCustom) { crate::bounded::over_a_bound() } else { String::new() })]
    Corrupt { path: PathBuf, cause: postcard::Error },
    #[error("{path}: ONNX hash mismatch (recorded {recorded}, computed {computed}): the file was altered or damaged")]
    HashMismatch { path: PathBuf, recorded: String, computed: String },
    #[error("{path}: its manifest or self-checks do not match the content digest: the file was altered or damaged")]
    DigestMismatch { path: PathBuf },
    #[error("{path}: {problem}")]
    BadSignature { path: PathBuf, problem: SignatureError },
    #[error("{path}: the bundle is not signed, and only bundles signed by a trusted key are run here (--trusted-keys)")]
    Unsigned { path: PathBuf },
    #[error("{path}: signed by key {fingerprint} (named '{signer}' in the bundle), which is not among the trusted keys")]
    UntrustedSigner { path: PathBuf, signer: String, fingerprint: String },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

/// Who vouches for a bundle, once read.
#[derive(Debug, Clone, PartialEq)]
pub enum Provenance {
    Unsigned,
    /// The signature matches the contents; whether the key is trusted is another question.
    Signed {
        signer: String,
        fingerprint: String,
    },
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 over the postcard encodings of the manifest and the self-checks, with the ONNX hash
/// between them (the ONNX itself is covered by its own hash).
fn content_digest(manifest: &Manifest, onnx_sha256: &[u8; 32], self_checks: &[SelfCheck]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"flowercam bundle content v4\0");
    hasher.update(postcard::to_stdvec(manifest).expect("manifest serializes"));
    hasher.update(onnx_sha256);
    hasher.update(postcard::to_stdvec(self_checks).expect("self-checks serialize"));
    hasher.finalize().into()
}

impl Bundle {
    pub fn new(manifest: Manifest, onnx: Vec<u8>, self_checks: Vec<SelfCheck>) -> Self {
        let onnx_sha256 = sha256(&onnx);
        let content_sha256 = content_digest(&manifest, &onnx_sha256, &self_checks);
        let format_version = needed_version(&manifest);
        Self { manifest, onnx, onnx_sha256, self_checks, content_sha256, signature: None, format_version }
    }

    /// Signs the content digest with `key`.
    pub fn sign(&mut self, key: &SecretKey) {
        self.signature = Some(key.sign(&self.content_sha256));
    }

    pub fn provenance(&self) -> Provenance {
        match &self.signature {
            None => Provenance::Unsigned,
            Some(s) => Provenance::Signed { signer: s.signer.clone(), fingerprint: s.fingerprint() },
        }
    }

    /// With trusted keys: the bundle must be signed by one of them (the signature itself was
    /// checked when the bundle was read). The signer is then named as the trusted keys file
    /// names its key: the name a bundle carries is not signed, and anyone may change it.
    pub fn check_trust(&mut self, trusted: &TrustedKeys, path: &Path) -> Result<(), BundleError> {
        let path = path.to_path_buf();
        match &mut self.signature {
            None => Err(BundleError::Unsigned { path }),
            Some(s) => match trusted.keys.iter().find(|k| k.key == s.public_key) {
                Some(key) => {
                    s.signer = key.name.clone();
                    Ok(())
                }
                None => Err(BundleError::UntrustedSigner { path, signer: s.signer.clone(), fingerprint: s.fingerprint() }),
            },
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.onnx.len() + 4096);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&needed_version(&self.manifest).to_le_bytes());
        // Serializing plain owned data into a Vec cannot fail.
        out.extend(postcard::to_stdvec(self).expect("bundle serializes"));
        out
    }

    /// Decodes and verifies a bundle; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, BundleError> {
        let path = path.to_path_buf();
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            // An ONNX model (its first field, the IR version, is tag 0x08) is the usual mistake.
            let onnx = bytes.first() == Some(&0x08) || path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
            let hint =
                if onnx { ": an ONNX file? Give the .bundle the trainer wrote beside it (labels, preprocessing, checks)" } else { "" };
            return Err(BundleError::NotABundle { path, hint });
        }
        let found = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if !(OLDEST_READ_VERSION..=FORMAT_VERSION).contains(&found) {
            return Err(BundleError::UnsupportedVersion { path, found });
        }
        let (mut bundle, rest): (Bundle, &[u8]) =
            postcard::take_from_bytes(&bytes[12..]).map_err(|cause| BundleError::Corrupt { path: path.clone(), cause })?;
        if !rest.is_empty() {
            return Err(BundleError::Invalid { path, problem: format!("{} unexpected bytes after the bundle", rest.len()) });
        }
        let computed = sha256(&bundle.onnx);
        if computed != bundle.onnx_sha256 {
            return Err(BundleError::HashMismatch { path, recorded: hex::encode(bundle.onnx_sha256), computed: hex::encode(computed) });
        }
        if content_digest(&bundle.manifest, &bundle.onnx_sha256, &bundle.self_checks) != bundle.content_sha256 {
            return Err(BundleError::DigestMismatch { path });
        }
        if let Some(signature) = &bundle.signature {
            signature.verify(&bundle.content_sha256).map_err(|problem| BundleError::BadSignature { path: path.clone(), problem })?;
        }
        bundle.validate().map_err(|problem| BundleError::Invalid { path, problem })?;
        bundle.format_version = found;
        Ok(bundle)
    }

    /// Reads a bundle file. Only a regular file of at most [`MAX_BUNDLE_BYTES`] is read: a device
    /// (`/dev/zero`), a pipe or a runaway file is refused before memory runs out.
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        Self::from_bytes(&Self::read_bytes(path)?, path)
    }

    /// The bytes of the file at `path`, refused before reading past [`MAX_BUNDLE_BYTES`] or
    /// from anything but a regular file: what [`Bundle::read`] parses, for callers that also
    /// need the bytes themselves (to hash them, say) without reading the file twice.
    pub fn read_bytes(path: &Path) -> Result<Vec<u8>, BundleError> {
        crate::read::read_file(path, MAX_BUNDLE_BYTES).map_err(|cause| match cause.kind() {
            std::io::ErrorKind::InvalidInput => BundleError::Invalid { path: path.into(), problem: cause.to_string() },
            std::io::ErrorKind::FileTooLarge => BundleError::Invalid { path: path.into(), problem: format!("{cause}; no VGG16 bundle is") },
            _ => BundleError::Io { path: path.into(), cause },
        })
    }

    /// Atomic: a crash mid-write leaves the previous bundle (or none), never half of one.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        crate::atomic::write_atomic(path, &self.to_bytes())
    }

    pub fn onnx_sha256_hex(&self) -> String {
        hex::encode(self.onnx_sha256)
    }

    fn validate(&self) -> Result<(), String> {
        self.manifest.check()?;
        // The signer's name is printed and served like the model's (anyone may sign a bundle).
        if let Some(signature) = &self.signature {
            crate::manifest::check_name("signer name", &signature.signer, crate::manifest::MAX_PATH_NAME_BYTES)?;
        }
        let labels = &self.manifest.labels;
        let [_, h, w, c] = self.manifest.input_shape();
        for check in &self.self_checks {
            crate::manifest::check_name("self-check name", &check.name, crate::manifest::MAX_PATH_NAME_BYTES)?;
            if check.rgb.len() != h * w * c || check.expected.len() != labels.len() {
                return Err(format!("self-check '{}' does not match the model's input or output size", check.name));
            }
            if check.expected_unknown_score.is_some() != self.manifest.open_set.is_some() {
                return Err(format!("self-check '{}' and the manifest disagree on whether the model has an open-set score", check.name));
            }
            crate::runtime::check_answer(&check.expected, check.expected_unknown_score)
                .map_err(|e| format!("self-check '{}' expects what no model answers: {e}", check.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::*;
    use crate::preprocess::*;

    pub fn sample_manifest() -> Manifest {
        Manifest {
            name: "test".into(),
            labels: vec!["a".into(), "b".into()],
            preprocessing: Preprocessing::new(32, ResizePolicy::Stretch).unwrap(),
            backbone: BackboneInfo {
                name: "tiny.onnx".into(),
                weights_sha256: "00".into(),
                convention: Convention::Caffe,
                channels: vec![1; 13],
                macs: 1000,
                slimmed_from: None,
            },
            head: HeadKind::Gap,
            precision: Precision::F32,
            training: TrainingSummary {
                train_images: 10,
                val_images: 4,
                epochs_run: 3,
                best_epoch: 2,
                val_accuracy: 1.0,
                val_loss: 0.1,
                train_accuracy: 1.0,
                train_loss: 0.1,
                backend: "flex".into(),
                device: "cpu".into(),
            },
            parity: ParityReport {
                images: 4,
                max_abs_diff: 1e-7,
                mean_abs_diff: 1e-8,
                argmax_agreement: 1.0,
                accuracy: 1.0,
                tolerance: 1e-4,
                unknown_score_max_abs_diff: None,
            },
            open_set: None,
            cross_validation: None,
            created_unix: 0,
            trainer_version: "0".into(),
        }
    }

    fn sample() -> Bundle {
        let check = SelfCheck {
            name: "x".into(),
            label: "a".into(),
            rgb: vec![7; 32 * 32 * 3],
            expected: vec![0.25, 0.75],
            expected_unknown_score: None,
        };
        Bundle::new(sample_manifest(), b"onnx bytes".to_vec(), vec![check])
    }

    #[test]
    fn round_trips() {
        let bundle = sample();
        let back = Bundle::from_bytes(&bundle.to_bytes(), Path::new("m.bundle")).unwrap();
        assert_eq!(back, bundle);
    }

    #[test]
    fn refuses_every_truncation() {
        let bytes = sample().to_bytes();
        for len in [0, 5, 11, 12, 40, bytes.len() / 2, bytes.len() - 1] {
            let err = Bundle::from_bytes(&bytes[..len], Path::new("m.bundle")).unwrap_err();
            assert!(err.to_string().starts_with("m.bundle: "), "{err}");
        }
    }

    #[test]
    fn refuses_altered_onnx() {
        let mut bundle = sample();
        bundle.onnx[0] ^= 1;
        let err = Bundle::from_bytes(&bundle.to_bytes(), Path::new("m.bundle")).unwrap_err();
        assert!(matches!(err, BundleError::HashMismatch { .. }), "{err}");
    }

    #[test]
    fn refuses_unknown_versions_and_foreign_files() {
        let mut bytes = sample().to_bytes();
        bytes[8] = 99;
        let err = Bundle::from_bytes(&bytes, Path::new("m.bundle")).unwrap_err();
        assert!(matches!(err, BundleError::UnsupportedVersion { found: 99, .. }), "{err}");
        assert!(err.to_string().ends_with("use a matching edge build"), "{err}");
        bytes[8] = 4;
        let err = Bundle::from_bytes(&bytes, Path::new("m.bundle")).unwrap_err();
        assert!(err.to_string().contains("re-export it with this trainer"), "{err}");
        // Version 6 holding what version 5 holds reads as well (an edge of this build wrote 6 always).
        bytes[8] = 6;
        assert_eq!(Bundle::from_bytes(&bytes, Path::new("m.bundle")).unwrap().format_version, 6);
        let err = Bundle::from_bytes(b"\x08\x01\x12\x04onnx-protobuf....", Path::new("m.model")).unwrap_err();
        assert!(matches!(err, BundleError::NotABundle { .. }), "{err}");
        assert!(err.to_string().contains("an ONNX file? Give the .bundle"), "{err}");
        let err = Bundle::from_bytes(b"GIF89a and so on, more", Path::new("m.gif")).unwrap_err();
        assert_eq!(err.to_string(), "m.gif: not a model bundle (bad magic bytes)");
    }

    #[test]
    fn is_written_in_the_oldest_version_that_holds_it() {
        // No evidence in the score: version 5, which edges of earlier builds read.
        let plain = sample();
        assert_eq!((plain.format_version, plain.to_bytes()[8]), (5, 5));
        let mut manifest = sample_manifest();
        manifest.open_set =
            Some(OpenSet { method: OpenSetMethod::KnnCosineBlocks45Evidence, references: 4, threshold: 0.1, target_acceptance: 0.975 });
        let mut check = plain.self_checks[0].clone();
        check.expected_unknown_score = Some(0.05);
        let evidence = Bundle::new(manifest, plain.onnx.clone(), vec![check]);
        let mut bytes = evidence.to_bytes();
        assert_eq!((evidence.format_version, bytes[8]), (6, 6));
        assert_eq!(Bundle::from_bytes(&bytes, Path::new("m.bundle")).unwrap(), evidence);
        // The trainer of 2026-12-07 (30ff9df) wrote such bundles under a version 5 header for a
        // few minutes: they read (an edge that knows the method runs them right).
        bytes[8] = 5;
        assert_eq!(Bundle::from_bytes(&bytes, Path::new("m.bundle")).unwrap().format_version, 5);
    }

    #[test]
    fn refuses_self_checks_of_the_wrong_size() {
        let mut bundle = sample();
        bundle.self_checks[0].rgb.pop();
        // Changed behind the digest's back: caught as an altered file.
        let err = Bundle::from_bytes(&bundle.to_bytes(), Path::new("m.bundle")).unwrap_err();
        assert!(matches!(err, BundleError::DigestMismatch { .. }), "{err}");
        // Made that way (digest and all): caught by the checks on the contents.
        let bundle = Bundle::new(bundle.manifest, bundle.onnx, bundle.self_checks);
        let err = Bundle::from_bytes(&bundle.to_bytes(), Path::new("m.bundle")).unwrap_err();
        assert!(matches!(err, BundleError::Invalid { .. }), "{err}");
    }

    /// A manifest the trainer never writes is refused even with a valid digest (anyone can
    /// make one): what the edge would otherwise do with it ranges from a 10 GB allocation
    /// (input size 100000) to writing outside `--save-frames` (a label `../x`) or silently never
    /// refusing (a NaN threshold).
    #[test]
    fn refuses_manifests_the_trainer_never_writes() {
        type Change = Box<dyn Fn(&mut Manifest)>;
        let cases: Vec<(&str, Change)> = vec![
            ("input size", Box::new(|m| m.preprocessing.input_size = 100_000)),
            ("input size", Box::new(|m| m.preprocessing.input_size = 0)),
            ("input size", Box::new(|m| m.preprocessing.input_size = u32::MAX)),
            ("empty", Box::new(|m| m.labels[1] = String::new())),
            ("path separator", Box::new(|m| m.labels[1] = "../../escaped".into())),
            ("path separator", Box::new(|m| m.labels[1] = "/tmp/x".into())),
            ("control character", Box::new(|m| m.labels[1] = "a\nb".into())),
            ("starts with a dot", Box::new(|m| m.labels[1] = "..".into())),
            ("no class fits", Box::new(|m| m.labels[1] = "unknown".into())),
            ("no class fits", Box::new(|m| m.labels[1] = "unsure".into())),
            ("appears twice", Box::new(|m| m.labels[1] = "a".into())),
            ("255 bytes", Box::new(|m| m.labels[1] = "x".repeat(256))),
            ("acceptance", Box::new(|m| m.open_set = Some(OpenSet { target_acceptance: 1.5, ..open_set(0.25) }))),
            ("references", Box::new(|m| m.open_set = Some(OpenSet { references: 0, ..open_set(0.25) }))),
            ("open-set threshold", Box::new(|m| m.open_set = Some(open_set(f32::NAN)))),
            ("open-set threshold", Box::new(|m| m.open_set = Some(open_set(f32::INFINITY)))),
            ("parity tolerance", Box::new(|m| m.parity.tolerance = f32::INFINITY)),
        ];
        for (problem, change) in cases {
            let mut bundle = sample();
            change(&mut bundle.manifest);
            let bundle = Bundle::new(bundle.manifest, bundle.onnx, bundle.self_checks);
            let err = Bundle::from_bytes(&bundle.to_bytes(), Path::new("m.bundle")).unwrap_err();
            assert!(matches!(err, BundleError::Invalid { .. }), "{problem}: {err}");
            assert!(err.to_string().contains(problem), "{problem}: {err}");
        }
        // The names the edge prints and serves: the model's, a self-check's, a signer's.
        let refused = |bundle: &Bundle| Bundle::from_bytes(&bundle.to_bytes(), Path::new("m.bundle")).unwrap_err().to_string();
        let mut named = sample();
        named.manifest.name = "evil\n\u{1b}]0;title".into();
        assert!(refused(&Bundle::new(named.manifest, named.onnx, named.self_checks)).contains("model name"));
        let mut named = sample();
        named.self_checks[0].name = "a\nb".into();
        assert!(refused(&Bundle::new(named.manifest, named.onnx, named.self_checks)).contains("self-check name"));
        let mut signed = sample();
        signed.sign(&crate::signing::SecretKey::generate("lab").unwrap());
        signed.signature.as_mut().unwrap().signer = "lab\nforged line".into();
        assert!(refused(&signed).contains("signer name"), "the signer's name is not signed: checked as the others");
        // Names a person gives a class stay fine.
        let mut bundle = sample();
        bundle.manifest.labels = vec!["Tussilago farfara".into(), "Unknown daffodil".into()];
        bundle.manifest.open_set = Some(open_set(0.25));
        bundle.self_checks[0].expected_unknown_score = Some(0.1);
        let bundle = Bundle::new(bundle.manifest, bundle.onnx, bundle.self_checks);
        assert!(Bundle::from_bytes(&bundle.to_bytes(), Path::new("m.bundle")).is_ok());
    }

    /// Self-checks are what the live swap and `edge selftest` hold a graph to: ones that expect
    /// logits, or no score where the manifest has an open set, would pass a graph that answers so.
    #[test]
    fn refuses_self_checks_that_no_model_answers() {
        type Change = Box<dyn Fn(&mut Bundle)>;
        let cases: Vec<(&str, Change)> = vec![
            ("not probabilities", Box::new(|b| b.self_checks[0].expected = vec![135.4, 7.4])),
            ("not probabilities", Box::new(|b| b.self_checks[0].expected = vec![1.0, 1.0])),
            ("not probabilities", Box::new(|b| b.self_checks[0].expected = vec![-0.5, 1.5])),
            ("disagree on whether the model has an open-set score", Box::new(|b| b.manifest.open_set = Some(open_set(0.25)))),
            ("disagree on whether the model has an open-set score", Box::new(|b| b.self_checks[0].expected_unknown_score = Some(0.1))),
            (
                "expects what no model answers: the graph answered an open-set score of",
                Box::new(|b| {
                    b.manifest.open_set = Some(open_set(0.25));
                    b.self_checks[0].expected_unknown_score = Some(-1e30);
                }),
            ),
        ];
        for (problem, change) in cases {
            let mut bundle = sample();
            change(&mut bundle);
            let bundle = Bundle::new(bundle.manifest, bundle.onnx, bundle.self_checks);
            let err = Bundle::from_bytes(&bundle.to_bytes(), Path::new("m.bundle")).unwrap_err();
            assert!(err.to_string().contains(problem), "{problem}: {err}");
        }
    }

    fn open_set(threshold: f32) -> OpenSet {
        OpenSet { method: OpenSetMethod::KnnCosineBlocks45, references: 10, threshold, target_acceptance: 0.975 }
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(testkit::fuzz_config())]

            /// Any change to a bundle's bytes (a flipped byte anywhere, a cut) is refused, and no
            /// input makes the reader panic.
            #[test]
            fn every_altered_bundle_is_refused(damage in testkit::damage()) {
                let good = sample().to_bytes();
                let (bytes, _) = damage.apply(&good);
                let read = Bundle::from_bytes(&bytes, Path::new("m.bundle"));
                prop_assert_eq!(read.is_ok(), bytes == good);
            }

            #[test]
            fn random_bytes_are_no_bundle(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                prop_assert!(Bundle::from_bytes(&bytes, Path::new("m.bundle")).is_err());
            }
        }
    }
}
