//! The event log: every call and state change of both clouds, in order, stamped with
//! virtual time. Its digest ([`crate::SimWorld::digest`]) is the determinism auditor's
//! fingerprint of a run.

use std::fmt::{self, Write as _};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::site::SimSite;

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

/// Capacity of the first chunk of a [`Chunked`] or [`Lines`]; each later chunk doubles,
/// up to the `MAX_*` sizes.
const FIRST_ITEMS: usize = 64;
const MAX_ITEMS: usize = 8 * 1024;
const FIRST_TEXT: usize = 1024;
const MAX_TEXT: usize = 64 * 1024;

/// An append-only sequence kept in chunks of bounded size: growing it never copies or
/// doubles what it already holds, so its memory stays within one chunk of its length.
#[derive(Debug)]
pub(crate) struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    pub(crate) fn push(&mut self, item: T) {
        let full = self.chunks.last().is_none_or(|c| c.len() == c.capacity());
        if full {
            let cap = FIRST_ITEMS
                .saturating_mul(1 << self.chunks.len().min(16))
                .min(MAX_ITEMS);
            self.chunks.push(Vec::with_capacity(cap));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(item);
            self.len += 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flatten()
    }
}

/// Where one line of a [`Lines`] ends: its chunk and its end offset in that chunk (it
/// starts where the line before it ends in the same chunk, or at 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineEnd {
    chunk: u32,
    end: u32,
}

/// Append-only text lines stored back to back in chunks of bounded size: no allocation
/// per line and a few bytes of bookkeeping each.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    text: Vec<String>,
    scratch: String,
}

impl Lines {
    /// Appends `line` (formatted) and returns where it ends.
    pub(crate) fn push(&mut self, line: impl fmt::Display) -> LineEnd {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        // Writing to a `String` cannot fail.
        let _ = write!(scratch, "{line}");
        let end = self.push_str(&scratch);
        self.scratch = scratch;
        end
    }

    fn push_str(&mut self, s: &str) -> LineEnd {
        let fits = self
            .text
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= s.len());
        if !fits {
            let cap = FIRST_TEXT
                .saturating_mul(1 << self.text.len().min(16))
                .clamp(s.len(), MAX_TEXT.max(s.len()));
            self.text.push(String::with_capacity(cap));
        }
        let chunk = self.text.len() - 1;
        let c = &mut self.text[chunk];
        c.push_str(s);
        LineEnd {
            chunk: u32::try_from(chunk).unwrap_or(u32::MAX),
            end: u32::try_from(c.len()).unwrap_or(u32::MAX),
        }
    }

    /// The lines whose ends are `ends`, in order (`ends` as [`Self::push`] returned
    /// them, every one of them).
    pub(crate) fn lines<'a>(
        &'a self,
        ends: impl Iterator<Item = LineEnd> + 'a,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let mut at = (u32::MAX, 0usize);
        ends.map(move |e| {
            let start = if at.0 == e.chunk { at.1 } else { 0 };
            let end = e.end as usize;
            at = (e.chunk, end);
            self.text
                .get(e.chunk as usize)
                .and_then(|c| c.get(start..end))
                .unwrap_or("")
        })
    }
}

/// A log of text lines alone, in order.
#[derive(Debug, Default)]
pub(crate) struct LineLog {
    lines: Lines,
    ends: Chunked<LineEnd>,
}

impl LineLog {
    /// Appends `line` (formatted).
    pub(crate) fn push(&mut self, line: impl fmt::Display) {
        let end = self.lines.push(line);
        self.ends.push(end);
    }

    /// Number of lines.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The lines, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.lines.lines(self.ends.iter().copied())
    }
}

/// One entry of the [`EventLog`] without its text: its time, and its text's chunk (the
/// high 24 bits) and site (the low 8: 0 for none, else the site's index plus one) packed
/// in one word beside the text's end.
#[derive(Clone, Copy, Debug)]
struct EventMeta {
    at_ms: u64,
    end: u32,
    chunk_site: u32,
}

impl EventMeta {
    fn new(at_ms: u64, site: Option<SimSite>, text: LineEnd) -> Self {
        let site = site.map_or(0, |s| s.index() as u32 + 1);
        Self {
            at_ms,
            end: text.end,
            chunk_site: (text.chunk.min(0x00ff_ffff) << 8) | site,
        }
    }

    fn site(self) -> Option<&'static str> {
        match self.chunk_site & 0xff {
            0 => None,
            n => SimSite::BOTH.get(n as usize - 1).map(|s| s.name()),
        }
    }

    fn text(self) -> LineEnd {
        LineEnd {
            chunk: self.chunk_site >> 8,
            end: self.end,
        }
    }
}

#[derive(Debug, Default)]
struct EventStore {
    meta: Chunked<EventMeta>,
    text: Lines,
}

/// An append-only, thread-safe event log.
#[derive(Debug)]
pub(crate) struct EventLog {
    start: tokio::time::Instant,
    events: Mutex<EventStore>,
}

impl EventLog {
    pub(crate) fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            events: Mutex::new(EventStore::default()),
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

    /// Appends an event; `text` is formatted straight into the log.
    pub(crate) fn record(&self, site: Option<SimSite>, text: impl fmt::Display) {
        let at_ms = self.now_ms();
        let mut g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let text = g.text.push(text);
        g.meta.push(EventMeta::new(at_ms, site, text));
    }

    /// Number of events so far.
    pub(crate) fn len(&self) -> usize {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .meta
            .len()
    }

    pub(crate) fn snapshot(&self) -> Vec<SimEvent> {
        let g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let texts = g.text.lines(g.meta.iter().map(|m| m.text()));
        g.meta
            .iter()
            .zip(texts)
            .map(|(m, text)| SimEvent {
                at_ms: m.at_ms,
                site: m.site(),
                text: text.to_owned(),
            })
            .collect()
    }

    /// Calls `f` with the digest line of every event, in order, under the lock.
    pub(crate) fn for_each_line(&self, mut f: impl FnMut(&str)) {
        let g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let texts = g.text.lines(g.meta.iter().map(|m| m.text()));
        let mut line = String::new();
        for (m, text) in g.meta.iter().zip(texts) {
            line.clear();
            let _ = write!(
                line,
                "{:>10} {:<6} {}",
                m.at_ms,
                m.site().unwrap_or("-"),
                text
            );
            f(&line);
        }
    }
}

/// sha256 over lines, each followed by a newline.
#[derive(Default)]
pub(crate) struct LineDigest {
    h: Sha256,
}

impl LineDigest {
    /// Adds one line made of `parts` back to back.
    pub(crate) fn line(&mut self, parts: &[&str]) {
        for p in parts {
            self.h.update(p.as_bytes());
        }
        self.h.update(b"\n");
    }

    /// The digest as lowercase hex.
    pub(crate) fn hex(self) -> String {
        self.h
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
