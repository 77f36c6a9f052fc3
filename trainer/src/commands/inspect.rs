//! `trainer inspect NAME.bundle`: what a bundle holds, verified: the container (hashes, digest,
//! signature, manifest) on reading, and its graph by loading it as the edge does.

use std::fmt::Write as _;
use std::path::Path;

use shared::Bundle;
use shared::bundle::Provenance;

pub fn run(path: &Path, json: bool) -> anyhow::Result<String> {
    let mut bundle = Bundle::read(path)?;
    let onnx_bytes = bundle.onnx.len();
    // What the edge would say of the graph: an intact container may still hold one it refuses.
    let graph =
        shared::runtime::Graph::load_classifier(std::mem::take(&mut bundle.onnx), &bundle.manifest).map(drop).map_err(|e| format!("{e:#}"));
    let m = &bundle.manifest;
    if json {
        return Ok(serde_json::to_string_pretty(&serde_json::json!({
            "format_version": bundle.format_version,
            "manifest": m,
            "onnx_bytes": onnx_bytes,
            "onnx_sha256": bundle.onnx_sha256_hex(),
            "content_sha256": hex::encode(bundle.content_sha256),
            "signed_by": bundle.signature.as_ref().map(|s| serde_json::json!({"signer": s.signer, "key": hex::encode(s.public_key), "fingerprint": s.fingerprint()})),
            "self_checks": bundle.self_checks.iter().map(|c| serde_json::json!({"name": c.name, "label": c.label})).collect::<Vec<_>>(),
            "graph": {"loads": graph.is_ok(), "refused_because": graph.as_ref().err()},
        }))?);
    }
    let mut s = String::new();
    let verified = if graph.is_ok() { "verified" } else { "container verified, graph refused" };
    let _ = writeln!(s, "bundle      {} (format {}, {verified})", path.display(), bundle.format_version);
    let _ = match &graph {
        Ok(()) => writeln!(s, "graph       loads in tract as the edge loads it"),
        Err(why) => writeln!(s, "graph       REFUSED by the edge: {why}"),
    };
    let _ = writeln!(s, "name        {}", m.name);
    let _ = match bundle.provenance() {
        Provenance::Unsigned => writeln!(s, "signed      no (an edge with --trusted-keys refuses it; sign with --sign KEY)"),
        // The signer's name comes from whoever made the key: shown escaped, so a control
        // character in it cannot drive the terminal.
        Provenance::Signed { signer, fingerprint } => {
            writeln!(s, "signed      by '{}' (key {fingerprint}), signature valid", shared::text::escaped(&signer))
        }
    };
    let _ = writeln!(s, "labels      {}", m.labels.join(", "));
    let _ = writeln!(
        s,
        "input       RGB uint8 {:?} (NHWC), resize {} to {}",
        m.input_shape(),
        m.preprocessing.resize,
        m.preprocessing.input_size
    );
    let _ =
        writeln!(s, "backbone    {} ({} convention, weights sha256 {})", m.backbone.name, m.backbone.convention, m.backbone.weights_sha256);
    let b = &m.backbone;
    let gmac = |macs: u64| macs as f64 / 1e9;
    let _ = writeln!(s, "trunk       {:.2} GMAC per frame; filters {:?}", gmac(b.macs), b.channels);
    if let Some(t) = &b.slimmed_from {
        let training = match t.distilled_on {
            0 => "pruned only".to_string(),
            n => format!("distilled on {n} photos"),
        };
        let _ = writeln!(
            s,
            "slimmed     from weights sha256 {} ({:.2} GMAC, {:.1}x the work), {training}",
            t.teacher_sha256,
            gmac(t.teacher_macs),
            t.teacher_macs as f64 / b.macs.max(1) as f64
        );
    }
    let _ = writeln!(s, "head        {}", m.head);
    let _ = writeln!(s, "precision   {}", m.precision);
    let t = &m.training;
    let _ = writeln!(
        s,
        "training    {} train / {} val images, {} epochs (best {}), val accuracy {:.4}, val loss {:.4}, {} on {}",
        t.train_images, t.val_images, t.epochs_run, t.best_epoch, t.val_accuracy, t.val_loss, t.backend, t.device
    );
    let p = &m.parity;
    let _ = writeln!(
        s,
        "parity      {} images: max |diff| {:.2e} (tolerance {}), mean {:.2e}, argmax agreement {:.3}; accuracy in tract {:.4}",
        p.images, p.max_abs_diff, p.tolerance, p.mean_abs_diff, p.argmax_agreement, p.accuracy
    );
    if let Some(cv) = &m.cross_validation {
        let _ = writeln!(
            s,
            "cross-val   {} folds: accuracy {:.4} +- {:.4}; temperature {:.3} (ECE {:.4} -> {:.4})",
            cv.folds, cv.mean_accuracy, cv.spread, cv.temperature, cv.ece_before, cv.ece_after
        );
    }
    match &m.open_set {
        Some(o) => {
            let _ = writeln!(
                s,
                "open set    {} on {} reference views; `unknown` above {:.4} (accepts {:.1}% of held-out training photos)",
                o.method,
                o.references,
                o.threshold,
                o.target_acceptance * 100.0
            );
        }
        None => {
            let _ = writeln!(s, "open set    none (the model always answers one of its classes)");
        }
    }
    let _ = writeln!(s, "onnx        {onnx_bytes} bytes, sha256 {}", bundle.onnx_sha256_hex());
    let _ = writeln!(s, "self-checks {} images", bundle.self_checks.len());
    let _ = write!(s, "exported    by trainer {} at unix time {}", m.trainer_version, m.created_unix);
    Ok(s)
}
