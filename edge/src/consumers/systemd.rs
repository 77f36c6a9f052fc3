//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`): READY after the first classified
//! frame, then WATCHDOG pings only as frames are classified, so a hung camera or a stuck
//! inference stops the pings and systemd restarts the service. STATUS carries the frame rate and
//! the last answer (`systemctl status flowercam-edge`). Active when `NOTIFY_SOCKET` is set.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::{Classified, Consumer, LoopStatus};

pub struct Systemd {
    ready: bool,
    /// Half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises; None: no watchdog asked for.
    ping_every: Option<Duration>,
    last_ping: Instant,
    frames_at_last_ping: u64,
    warned: bool,
}

impl Systemd {
    /// A consumer when systemd (or a test standing in for it) listens on `NOTIFY_SOCKET`.
    pub fn from_env() -> Option<Self> {
        std::env::var_os("NOTIFY_SOCKET")?;
        let ping_every = sd_notify::watchdog_enabled().map(|d| d / 2);
        Some(Self { ready: false, ping_every, last_ping: Instant::now(), frames_at_last_ping: 0, warned: false })
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states)
            && !self.warned
        {
            // Never a reason to stop classifying; said once, not at every frame.
            self.warned = true;
            tracing::warn!("cannot notify systemd on NOTIFY_SOCKET: {e}");
        }
    }
}

/// Asks systemd (when it listens) for `by` more to start in than `TimeoutStartSec`, before a
/// start that may take long (the first model's trial).
pub fn extend_start(by: Duration) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        if let Err(e) = sd_notify::notify(&[NotifyState::ExtendTimeoutUsec(usec)]) {
            tracing::warn!("cannot notify systemd on NOTIFY_SOCKET: {e}");
        }
    }
}

impl Consumer for Systemd {
    fn frame(&mut self, frame: &Classified<'_>) -> anyhow::Result<()> {
        let since_ping = self.last_ping.elapsed();
        let due = self.ping_every.is_some_and(|every| since_ping >= every);
        if self.ready && !due {
            return Ok(());
        }
        let frames = frame.status.classified - self.frames_at_last_ping;
        let fps = frames as f32 / since_ping.as_secs_f32().max(1e-3);
        let status = format!(
            "{fps:.1} fps, last {} {:.2} (frame {})",
            frame.result.smoothed_label, frame.result.smoothed_probability, frame.result.frame
        );
        let mut states = vec![NotifyState::Status(&status)];
        if !self.ready {
            states.push(NotifyState::Ready);
        }
        if self.ping_every.is_some() {
            states.push(NotifyState::Watchdog);
        }
        self.send(&states);
        self.ready = true;
        self.last_ping = Instant::now();
        self.frames_at_last_ping = frame.status.classified;
        Ok(())
    }

    fn finish(&mut self, _status: &LoopStatus) -> anyhow::Result<()> {
        self.send(&[NotifyState::Stopping]);
        Ok(())
    }
}
