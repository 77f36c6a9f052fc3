//! Signed bundles end to end (issue 11): `trainer keygen`, `train --sign`, `trainer inspect`, and
//! an edge with `--trusted-keys` that runs what a trusted key signed and refuses, each with its
//! own message, an unsigned bundle, another key's, one whose ONNX was edited (with every hash
//! recomputed), and one whose signature was cut short. No secret is ever printed.

use std::path::Path;

use e2e::{ok, run};
use shared::Bundle;

fn edge_err(args: &[&str]) -> String {
    let out = run("edge", args);
    assert_eq!(out.status.code(), Some(1), "must be refused: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(bundle: &Bundle, path: &Path) -> String {
    std::fs::write(path, bundle.to_bytes()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn only_bundles_signed_by_a_trusted_key_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    trainer::fixtures::write_dataset(&dir.path().join("data"), &["stripes", "columns"], 8, 3).unwrap();
    trainer::fixtures::write_trunk_onnx(&dir.path().join("trunk.onnx"), 1.0 / 16.0, 9).unwrap();

    let keygen = ok(&run("trainer", &["keygen", "--out", &p("lab.key"), "--name", "lab bench"]));
    ok(&run("trainer", &["keygen", "--out", &p("other.key"), "--name", "someone else"]));
    let secret = std::fs::read_to_string(p("lab.key")).unwrap();
    let secret_hex = secret.split_whitespace().nth(2).unwrap();
    assert!(!keygen.contains(secret_hex), "keygen must not print the secret: {keygen}");
    let again = run("trainer", &["keygen", "--out", &p("lab.key"), "--name", "x"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("never overwritten"));

    let train = |name: &str, sign: Option<String>| -> String {
        let export = p(&format!("models/{name}"));
        let mut args: Vec<String> = [
            "train",
            &p("data"),
            "--backbone",
            &p("trunk.onnx"),
            "--out",
            &p(name),
            "--input-size",
            "64",
            "--export-to",
            &export,
            "--cache-dir",
            &p("cache"),
        ]
        .map(String::from)
        .to_vec();
        args.insert(1, "--data".into());
        if let Some(key) = sign {
            args.extend(["--sign".into(), key]);
        }
        ok(&run("trainer", &args.iter().map(String::as_str).collect::<Vec<_>>()));
        format!("{export}.bundle")
    };
    let signed = train("signed", Some(p("lab.key")));
    let inspect = ok(&run("trainer", &["inspect", &signed]));
    assert!(inspect.contains("signed      by 'lab bench'"), "{inspect}");
    assert!(!inspect.contains(secret_hex));

    let lab = p("lab.key.pub");
    let selftest = ok(&run("edge", &["--trusted-keys", &lab, "selftest", "--model", &signed]));
    assert!(selftest.contains("selftest passed"), "{selftest}");

    // Without trusted keys it runs, and says (at the default log level) that it is unverified.
    let noted =
        std::process::Command::new(e2e::bin("edge")).args(["selftest", "--model", &signed]).env("RUST_LOG", "info").output().unwrap();
    assert!(noted.status.success());
    assert!(String::from_utf8_lossy(&noted.stderr).contains("unverified"), "{}", String::from_utf8_lossy(&noted.stderr));

    let other = edge_err(&["--trusted-keys", &p("other.key.pub"), "selftest", "--model", &signed]);
    assert!(other.contains("named 'lab bench' in the bundle") && other.contains("not among the trusted keys"), "{other}");

    // The signer's name is not signed: relabelled, the bundle still verifies, and a box with
    // trusted keys names the signer as its own keys file does, not as the bundle claims.
    let mut relabelled = Bundle::read(Path::new(&signed)).unwrap();
    relabelled.signature.as_mut().unwrap().signer = "Someone Else".into();
    let relabelled = write(&relabelled, &dir.path().join("relabelled.bundle"));
    let said = std::process::Command::new(e2e::bin("edge"))
        .args(["--trusted-keys", &lab, "selftest", "--model", &relabelled])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&said.stderr);
    assert!(said.status.success() && log.contains("signed by 'lab bench'") && !log.contains("Someone Else"), "{log}");

    let original = Bundle::read(Path::new(&signed)).unwrap();
    let unsigned = Bundle::new(original.manifest.clone(), original.onnx.clone(), original.self_checks.clone());
    let unsigned = write(&unsigned, &dir.path().join("unsigned.bundle"));
    let err = edge_err(&["--trusted-keys", &lab, "selftest", "--model", &unsigned]);
    assert!(err.contains("the bundle is not signed"), "{err}");

    // An attacker edits the ONNX, recomputes every hash, and keeps the old signature.
    let mut onnx = original.onnx.clone();
    let at = onnx.len() - 100;
    onnx[at] ^= 0x01;
    let mut tampered = Bundle::new(original.manifest.clone(), onnx, original.self_checks.clone());
    tampered.signature = original.signature.clone();
    let tampered = write(&tampered, &dir.path().join("tampered.bundle"));
    for trust in [&["--trusted-keys", &lab][..], &[][..]] {
        let err = edge_err(&[trust, &["selftest", "--model", &tampered]].concat());
        assert!(err.contains("does not match its contents: the bundle was altered after it was signed"), "{err}");
    }

    let mut cut = original.clone();
    cut.signature.as_mut().unwrap().signature.truncate(40);
    let cut = write(&cut, &dir.path().join("cut.bundle"));
    let err = edge_err(&["--trusted-keys", &lab, "selftest", "--model", &cut]);
    assert!(err.contains("signature is 40 bytes long, not 64"), "{err}");

    // A manifest edited without touching the ONNX (a lower threshold, say) breaks the digest.
    let mut edited = original.clone();
    edited.manifest.labels.swap(0, 1);
    let edited = write(&edited, &dir.path().join("edited.bundle"));
    let err = edge_err(&["selftest", "--model", &edited]);
    assert!(err.contains("do not match the content digest"), "{err}");

    // `trainer export --sign` signs a re-export too.
    let resigned = p("models/resigned");
    let out = ok(&run("trainer", &["export", "--run", &p("signed"), "--out", &resigned, "--sign", &p("other.key"), "--json"]));
    assert!(out.contains("someone else"), "{out}");
    ok(&run("edge", &["--trusted-keys", &p("other.key.pub"), "selftest", "--model", &format!("{resigned}.bundle")]));
}
