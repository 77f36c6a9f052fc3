//! Signed bundles: who exported a model, and whether the edge trusts them.
//!
//! A bundle's content digest (the manifest, the ONNX's SHA-256 and the self-checks; see
//! [`crate::bundle`]) is signed with ed25519 (ed25519-dalek). The SHA-256 alone only catches
//! accidents: whoever edits the ONNX can recompute it. The signature cannot be recomputed without
//! the secret key, so an edge given `--trusted-keys` runs only what a trusted key signed.
//!
//! Key files are one line of text: `flowercam-secret-key ed25519 HEX NAME` (mode 0600, refused
//! when others may read it, as ssh does) and `flowercam-public-key ed25519 HEX NAME`; a trusted
//! keys file holds public-key lines (and `#` comments).

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

const SECRET_TAG: &str = "flowercam-secret-key ed25519";
const PUBLIC_TAG: &str = "flowercam-public-key ed25519";

/// What a signed bundle carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The key's name, as `trainer keygen --name` gave it (informative; the key decides).
    pub signer: String,
    pub public_key: [u8; 32],
    /// 64 bytes of ed25519 signature over the bundle's content digest.
    pub signature: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignatureError {
    #[error("its signature is {0} bytes long, not 64: the signature is truncated or damaged")]
    Malformed(usize),
    #[error("its signature by '{0}' does not match its contents: the bundle was altered after it was signed")]
    Mismatch(String),
    #[error("its signing key is not a valid ed25519 key")]
    BadKey,
}

impl Signature {
    /// Checks the signature against the key it names (not whether that key is trusted).
    pub fn verify(&self, digest: &[u8; 32]) -> Result<(), SignatureError> {
        let signature =
            ed25519_dalek::Signature::from_slice(&self.signature).map_err(|_| SignatureError::Malformed(self.signature.len()))?;
        let key = VerifyingKey::from_bytes(&self.public_key).map_err(|_| SignatureError::BadKey)?;
        key.verify_strict(digest, &signature).map_err(|_| SignatureError::Mismatch(self.signer.clone()))
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_key)
    }
}

/// The first 8 bytes of the public key, in hex: enough to tell keys apart in messages.
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    hex::encode(&public_key[..8])
}

/// The longest key name (`trainer keygen --name`), in characters.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// A key's name as `trainer keygen --name` takes it: one line of printable text, trimmed, at
/// most [`MAX_KEY_NAME_CHARS`]; it is shown wherever a bundle's signer is (a terminal, a log, the
/// live page), so it must not carry control characters such as a terminal's escape sequences.
pub fn key_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a key name must not be empty".into());
    }
    if name.chars().any(crate::text::unprintable) {
        return Err(format!("the key name {name:?} holds control characters (a line break, a terminal escape); use printable text"));
    }
    if name.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(format!("a key name has at most {MAX_KEY_NAME_CHARS} characters"));
    }
    Ok(name.to_string())
}

pub struct SecretKey {
    pub name: String,
    key: SigningKey,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PublicKey {
    pub name: String,
    pub key: [u8; 32],
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// `TAG HEX NAME` -> (bytes, name).
fn parse_line(line: &str, tag: &str) -> Option<([u8; 32], String)> {
    let rest = line.trim().strip_prefix(tag)?.trim_start();
    let (hex, name) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((hex32(hex)?, name.trim().to_string()))
}

/// Shows the name and the public key's fingerprint, never the secret.
impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey").field("name", &self.name).field("public", &self.public().fingerprint()).finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A new random key (the operating system's generator).
    pub fn generate(name: &str) -> anyhow::Result<Self> {
        let name = key_name(name).map_err(anyhow::Error::msg)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no random numbers from the operating system: {e}"))?;
        Ok(Self { name, key: SigningKey::from_bytes(&seed) })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { name: self.name.clone(), key: self.key.verifying_key().to_bytes() }
    }

    pub fn sign(&self, digest: &[u8; 32]) -> Signature {
        Signature { signer: self.name.clone(), public_key: self.public().key, signature: self.key.sign(digest).to_bytes().to_vec() }
    }

    /// Writes `path` (mode 0600, never over an existing file) and `path.pub`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let public = path.with_extension(match path.extension() {
            Some(e) => format!("{}.pub", e.to_string_lossy()),
            None => "pub".into(),
        });
        for p in [path, public.as_path()] {
            anyhow::ensure!(!p.exists(), "{}: exists; a key is never overwritten (choose another --out)", p.display());
        }
        // A key's own folder (`~/.flowercam/`) is made for it, readable by its owner only.
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty() && !f.exists()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)
                .map_err(|e| anyhow::anyhow!("{}: cannot create the key's folder: {e}", folder.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", path.display()))?;
        writeln!(file, "{SECRET_TAG} {} {}", hex::encode(self.key.to_bytes()), self.name)?;
        file.sync_all()?;
        crate::atomic::write_atomic(&public, self.public().to_line().as_bytes())?;
        Ok(())
    }

    /// Reads a secret key file; refused when group or others may read it.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let cannot = |e: std::io::Error| anyhow::anyhow!("{}: cannot read the key: {e}", path.display());
        // What the file is first (a folder, a public key): its mode says nothing about a key.
        let text = crate::read::read_text(path, KEY_FILE_BYTES).map_err(cannot)?;
        let (seed, name) = parse_line(&text, SECRET_TAG).ok_or_else(|| match parse_line(&text, PUBLIC_TAG) {
            Some(_) => anyhow::anyhow!("{}: a public key; --sign takes the secret one (the file without .pub)", path.display()),
            None => anyhow::anyhow!("{}: not a flowercam secret key (made by `trainer keygen`)", path.display()),
        })?;
        let mode = std::fs::metadata(path).map_err(cannot)?.permissions().mode() & 0o777;
        anyhow::ensure!(mode & 0o077 == 0, "{}: permissions {mode:o} are too open for a secret key (chmod 600 it)", path.display());
        Ok(Self { name, key: SigningKey::from_bytes(&seed) })
    }
}

impl PublicKey {
    pub fn to_line(&self) -> String {
        format!("{PUBLIC_TAG} {} {}\n", hex::encode(self.key), self.name)
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key)
    }
}

/// The largest key or trusted-keys file read: a key line is about 100 bytes.
const KEY_FILE_BYTES: u64 = 1 << 20;

/// The keys an edge accepts signatures from (`--trusted-keys FILE`).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    pub keys: Vec<PublicKey>,
}

impl TrustedKeys {
    /// One public-key line per key (`trainer keygen` writes them as KEY.pub); `#` comments and
    /// blank lines skipped; anything else is an error naming the line.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = crate::read::read_text(path, KEY_FILE_BYTES)
            .map_err(|e| anyhow::anyhow!("{}: cannot read the trusted keys: {e}", path.display()))?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, name) = parse_line(line, PUBLIC_TAG)
                .ok_or_else(|| anyhow::anyhow!("{}:{}: not a flowercam public key line ({PUBLIC_TAG} HEX NAME)", path.display(), n + 1))?;
            anyhow::ensure!(VerifyingKey::from_bytes(&key).is_ok(), "{}:{}: not a valid ed25519 key", path.display(), n + 1);
            // The name a trusted bundle's signer is shown by (the bundle's own is not signed).
            anyhow::ensure!(
                !name.contains(crate::text::unprintable),
                "{}:{}: the key's name holds a control character",
                path.display(),
                n + 1
            );
            keys.push(PublicKey { name, key });
        }
        anyhow::ensure!(!keys.is_empty(), "{}: no keys in the trusted keys file", path.display());
        Ok(Self { keys })
    }

    pub fn contains(&self, public_key: &[u8; 32]) -> bool {
        self.keys.iter().any(|k| &k.key == public_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_name_is_one_line_of_printable_text() {
        assert_eq!(key_name("  lab bench ").unwrap(), "lab bench");
        assert_eq!(key_name("Gärtnerei Süd").unwrap(), "Gärtnerei Süd");
        for bad in ["", "   ", "two\nlines", "evil\u{1b}[2J", "bell\u{7}", "lab\u{202e}bench"] {
            assert!(key_name(bad).is_err(), "{bad:?} accepted");
            assert!(SecretKey::generate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(key_name(&"x".repeat(MAX_KEY_NAME_CHARS)).is_ok());
        assert!(key_name(&"x".repeat(MAX_KEY_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn sign_verify_and_every_way_to_fail() {
        let key = SecretKey::generate("lab").unwrap();
        let digest = [7u8; 32];
        let signature = key.sign(&digest);
        assert_eq!(signature.verify(&digest), Ok(()));
        assert_eq!(signature.verify(&[8u8; 32]), Err(SignatureError::Mismatch("lab".into())));
        let mut short = signature.clone();
        short.signature.truncate(40);
        assert_eq!(short.verify(&digest), Err(SignatureError::Malformed(40)));
        let mut other = signature.clone();
        other.public_key = SecretKey::generate("other").unwrap().public().key;
        assert_eq!(other.verify(&digest), Err(SignatureError::Mismatch("lab".into())));
    }

    #[test]
    fn key_files_round_trip_and_loose_permissions_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.key");
        let key = SecretKey::generate("lab bench").unwrap();
        key.write(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(key.write(&path).is_err(), "never overwritten");
        let secret = std::fs::read_to_string(&path).unwrap().split_whitespace().nth(2).unwrap().to_string();
        assert!(!format!("{key:?}").contains(&secret), "Debug must not show the secret");
        let again = SecretKey::read(&path).unwrap();
        assert_eq!((again.name.as_str(), again.public()), ("lab bench", key.public()));
        let trusted = TrustedKeys::read(&dir.path().join("lab.key.pub")).unwrap();
        assert!(trusted.contains(&key.public().key));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SecretKey::read(&path).unwrap_err().to_string().contains("too open"));
        let public = SecretKey::read(&dir.path().join("lab.key.pub")).unwrap_err().to_string();
        assert!(public.contains("a public key; --sign takes the secret one"), "{public}");
        let nested = dir.path().join("new/folder/lab.key");
        key.write(&nested).unwrap();
        assert_eq!(
            std::fs::metadata(nested.parent().unwrap()).unwrap().permissions().mode() & 0o777,
            0o700,
            "a key's folder is its owner's"
        );
        // A folder readable by all (0755), which the old check called "permissions too open".
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let folder = SecretKey::read(dir.path()).unwrap_err().to_string();
        assert!(folder.contains("cannot read the key: not a regular file"), "a folder is named as one, not as too open: {folder}");
        let bad = dir.path().join("trusted");
        std::fs::write(&bad, "# ours\n\nssh-ed25519 AAAA me@host\n").unwrap();
        assert!(TrustedKeys::read(&bad).unwrap_err().to_string().contains("trusted:3: not a flowercam public key line"));
        let line = key.public().to_line();
        std::fs::write(&bad, line.trim_end().to_string() + "\u{1b}[2J\n").unwrap();
        assert!(TrustedKeys::read(&bad).unwrap_err().to_string().contains("trusted:1: the key's name holds a control character"));
    }
}
