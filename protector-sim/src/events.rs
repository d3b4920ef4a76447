//! The event log: every call and state change of both clouds, in order, stamped with
//! virtual time. Its digest ([`crate::SimWorld::digest`]) is the determinism auditor's
//! fingerprint of a run.

use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimEvent {
    /// Virtual milliseconds since the world was built.
    pub at_ms: u64,
    /// The site it happened on, if any (`site-a`, `site-b`).
    pub site: Option<&'static str>,
    /// What happened.
    pub text: String,
}

impl SimEvent {
    /// The line hashed into the digest.
    pub fn line(&self) -> String {
        format!(
            "{:>10} {:<6} {}",
            self.at_ms,
            self.site.unwrap_or("-"),
            self.text
        )
    }
}

/// An append-only, thread-safe event log.
#[derive(Debug)]
pub(crate) struct EventLog {
    start: tokio::time::Instant,
    events: Mutex<Vec<SimEvent>>,
}

impl EventLog {
    pub(crate) fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    /// Virtual milliseconds since the world was built.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(
            tokio::time::Instant::now()
                .duration_since(self.start)
                .as_millis(),
        )
        .unwrap_or(u64::MAX)
    }

    /// The instant the world was built.
    pub(crate) fn start(&self) -> tokio::time::Instant {
        self.start
    }

    pub(crate) fn record(&self, site: Option<&'static str>, text: impl Into<String>) {
        let ev = SimEvent {
            at_ms: self.now_ms(),
            site,
            text: text.into(),
        };
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ev);
    }

    pub(crate) fn snapshot(&self) -> Vec<SimEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// sha256 hex of lines, each followed by a newline.
pub(crate) fn digest_lines<I, S>(lines: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_ref().as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
