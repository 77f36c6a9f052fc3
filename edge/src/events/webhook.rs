//! `--webhook http://host[:port]/path`: each event's JSON, POSTed, for those without a broker.
//!
//! With `--webhook-secret`, the header `X-Flowercam-Signature: sha256=<hex>` carries the
//! HMAC-SHA256 of the body under that secret, so the receiver can tell the box's posts from
//! anyone else's. A receiver that is down, slow (`WEBHOOK_TIMEOUT`) or answers 5xx, 408 or 429
//! gets the event again after a backoff; any other refusal (4xx) drops that event, said in the
//! log. Events wait in the outbox meanwhile, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::outbox::Outbox;
use super::{EventSink, FieldEvent};
use crate::backoff::Backoff;
use crate::redact::redact;
use shared::usage::UsageError;

/// The longest a post may take, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
pub const SIGNATURE_HEADER: &str = "X-Flowercam-Signature";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub struct Webhook {
    outbox: Arc<Outbox>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    pub fn start(url: &str, secret: Option<String>, outbox: usize) -> anyhow::Result<Self> {
        check_url(url)?;
        let outbox = Arc::new(Outbox::new(outbox));
        let stop = Arc::new(AtomicBool::new(false));
        // No redirects: ureq would follow a 301-303 as a GET without the event (delivered, as far
        // as the answer goes) and fail a 307/308 for ever; a moved hook is said, not followed.
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(WEBHOOK_TIMEOUT)).http_status_as_error(false).max_redirects(0).build().into();
        let signed = if secret.is_some() { ", signed" } else { ", unsigned (no --webhook-secret)" };
        let thread = {
            let (outbox, stop, url) = (Arc::clone(&outbox), Arc::clone(&stop), url.to_string());
            std::thread::Builder::new().name("webhook".into()).spawn(move || deliver(&agent, &url, secret.as_deref(), &outbox, &stop))?
        };
        tracing::info!("web hook: events to {}{signed}", redact(url));
        Ok(Webhook { outbox, stop, thread: Some(thread) })
    }
}

/// `--webhook`: an http:// URL with a host. Checked when `edge run` starts and by `edge config
/// --check`, not by clap, which would echo a password in the URL.
pub fn check_url(url: &str) -> Result<(), UsageError> {
    let bad = |why: &str| UsageError(format!("--webhook {}: {why}", redact(url)));
    if url.starts_with("https://") {
        return Err(bad("https is not built in; post to a receiver on the LAN over http://"));
    }
    if !url.starts_with("http://") {
        return Err(bad("not an http:// URL"));
    }
    if crate::redact::has_unencoded_userinfo(url) {
        return Err(bad(crate::redact::UNENCODED_USERINFO));
    }
    let uri: ureq::http::Uri = url.parse().map_err(|e| bad(&format!("not a URL: {e}")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(())
}

enum Outcome {
    Delivered,
    Refused(String),
    Retry(anyhow::Error),
}

fn post(agent: &ureq::Agent, url: &str, secret: Option<&str>, event: &FieldEvent) -> Outcome {
    let body = event.to_json();
    let mut request = agent.post(url).header("Content-Type", "application/json").header("X-Flowercam-Event", event.event.name());
    if let Some(secret) = secret {
        request = request.header(SIGNATURE_HEADER, signature(secret.as_bytes(), &body));
    }
    match request.send(&body[..]) {
        Ok(response) => {
            let status = response.status();
            if status.is_success() {
                Outcome::Delivered
            } else if status.is_server_error() || status == 408 || status == 429 {
                Outcome::Retry(anyhow::anyhow!("web hook {}: HTTP {status}", redact(url)))
            } else if status.is_redirection() {
                // Whatever the receiver sends: without a password, and escaped to one line.
                let to = response.headers().get("location").map_or("?".into(), |l| {
                    let shown = shared::text::escaped(&redact(&String::from_utf8_lossy(l.as_bytes())));
                    // A line of the log, not a page of it.
                    if shown.chars().count() > 200 { shown.chars().take(200).collect::<String>() + "..." } else { shown }
                });
                Outcome::Refused(format!("HTTP {status}, moved to {to}: give that URL as --webhook; redirects are not followed"))
            } else {
                Outcome::Refused(format!("HTTP {status}"))
            }
        }
        Err(e) => Outcome::Retry(anyhow::anyhow!("web hook {}: {e}", redact(url))),
    }
}

fn deliver(agent: &ureq::Agent, url: &str, secret: Option<&str>, outbox: &Outbox, stop: &AtomicBool) {
    let mut backoff = Backoff::new();
    while !stop.load(Ordering::SeqCst) {
        let Some(event) = outbox.pop(Duration::from_millis(200)) else {
            if outbox.is_closed() {
                return;
            }
            continue;
        };
        match post(agent, url, secret, &event) {
            Outcome::Delivered => backoff.reset(),
            Outcome::Refused(why) => tracing::warn!("web hook {}: refused a {} event ({why}); dropped", redact(url), event.event),
            Outcome::Retry(why) => {
                outbox.unpop(event);
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                backoff.pause(&why);
            }
        }
    }
}

impl EventSink for Webhook {
    fn send(&mut self, event: &FieldEvent) {
        self.outbox.push(event.clone());
    }

    fn close(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        self.outbox.close();
        if let Some(thread) = self.thread.take() {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.stop.store(true, Ordering::SeqCst);
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                // In a post or a backoff: it ends by itself; the process does not wait for it.
                tracing::warn!("web hook: stopping with {} event(s) undelivered", self.outbox.len() + 1);
            }
        }
    }

    fn dropped(&self) -> u64 {
        self.outbox.dropped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn urls_are_checked_and_passwords_never_shown() {
        assert!(check_url("http://127.0.0.1:8123/api/webhook/x").is_ok());
        for bad in ["https://hooks.example/x", "ftp://x", "http://", "hooks.example/x"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let e = check_url("https://u:hunter2@hooks.example/x").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        let e = check_url("http://u:hunt/er2@127.0.0.1/h").unwrap_err().to_string();
        assert!(e.contains("is written %2F") && !e.contains("er2"), "{e}");
    }
}
