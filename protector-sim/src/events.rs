//! The event log: every call and state change of both clouds, in order, stamped with
//! virtual time. Its digest ([`crate::SimWorld::digest`]) is the determinism auditor's
//! fingerprint of a run.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::call::CallKind;
use crate::hash::FixedHash;
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
        // Writing to a `String` cannot fail.
        self.push_with(|s| {
            let _ = write!(s, "{line}");
        })
    }

    /// Appends the line `write` writes into the string it is given (empty) and returns
    /// where it ends.
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut String)) -> LineEnd {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        write(&mut scratch);
        let end = self.push_str(&scratch);
        self.scratch = scratch;
        end
    }

    fn push_str(&mut self, s: &str) -> LineEnd {
        self.push_parts(&[s])
    }

    /// Appends the line made of `parts` back to back, straight into its chunk, and
    /// returns where it ends.
    pub(crate) fn push_parts(&mut self, parts: &[&str]) -> LineEnd {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let fits = self
            .text
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= len);
        if !fits {
            let cap = FIRST_TEXT
                .saturating_mul(1 << self.text.len().min(16))
                .clamp(len, MAX_TEXT.max(len));
            self.text.push(String::with_capacity(cap));
        }
        let chunk = self.text.len() - 1;
        let c = &mut self.text[chunk];
        for p in parts {
            c.push_str(p);
        }
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

    /// Appends the line `write` writes into the string it is given (empty).
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut String)) {
        let end = self.lines.push_with(write);
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
/// high 24 bits) and site (the low 7: 0 for none, else the site's index plus one) packed
/// in one word beside the text's end. A call the gate admitted has no text: bit 7 is set
/// and `end` is the index of its kind in [`EventStore::kinds`].
#[derive(Clone, Copy, Debug)]
struct EventMeta {
    at_ms: u64,
    end: u32,
    chunk_site: u32,
}

/// The bit of [`EventMeta::chunk_site`] that marks an admitted call.
const CALL_BIT: u32 = 0x80;

fn site_code(site: Option<SimSite>) -> u32 {
    site.map_or(0, |s| s.index() as u32 + 1)
}

impl EventMeta {
    fn new(at_ms: u64, site: Option<SimSite>, text: LineEnd) -> Self {
        Self {
            at_ms,
            end: text.end,
            chunk_site: (text.chunk.min(0x00ff_ffff) << 8) | site_code(site),
        }
    }

    fn call(at_ms: u64, site: SimSite, kind: u32) -> Self {
        Self {
            at_ms,
            end: kind,
            chunk_site: CALL_BIT | site_code(Some(site)),
        }
    }

    /// The index of the call's kind, for an admitted call.
    fn call_kind(self) -> Option<usize> {
        (self.chunk_site & CALL_BIT != 0).then_some(self.end as usize)
    }

    fn site(self) -> Option<&'static str> {
        match self.chunk_site & 0x7f {
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
    /// The kinds of the admitted calls logged so far, each once, in order of first use.
    kinds: Vec<CallKind>,
    /// The index of each kind in `kinds`.
    kind_index: HashMap<CallKind, u32, FixedHash>,
}

impl EventStore {
    /// The index of `kind` in [`Self::kinds`], added if new.
    fn kind_index(&mut self, kind: CallKind) -> u32 {
        let kinds = &mut self.kinds;
        *self.kind_index.entry(kind).or_insert_with(|| {
            kinds.push(kind);
            u32::try_from(kinds.len() - 1).unwrap_or(u32::MAX)
        })
    }

    /// Calls `f` with the time, site and text of every event, in order.
    fn for_each(&self, mut f: impl FnMut(EventMeta, EventText<'_>)) {
        let mut texts = self.text.lines(
            self.meta
                .iter()
                .filter(|m| m.call_kind().is_none())
                .map(|m| m.text()),
        );
        for m in self.meta.iter() {
            let text = match m.call_kind() {
                Some(i) => match self.kinds.get(i) {
                    Some(kind) => EventText::Call(*kind),
                    None => EventText::Line(""),
                },
                None => EventText::Line(texts.next().unwrap_or("")),
            };
            f(*m, text);
        }
    }
}

/// The text of one event: a line as recorded, or an admitted call
/// (`call <service> <kind>`).
#[derive(Clone, Copy)]
enum EventText<'a> {
    Line(&'a str),
    Call(CallKind),
}

impl fmt::Display for EventText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(text) => f.write_str(text),
            Self::Call(kind) => write!(f, "call {} {}", kind.service(), kind),
        }
    }
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

    /// Appends an event whose text `write` writes into the string it is given (empty).
    pub(crate) fn record_with(&self, site: Option<SimSite>, write: impl FnOnce(&mut String)) {
        let at_ms = self.now_ms();
        let mut g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let text = g.text.push_with(write);
        g.meta.push(EventMeta::new(at_ms, site, text));
    }

    /// Appends an event whose text is `parts` back to back (no formatting, no copy
    /// through a scratch line).
    pub(crate) fn record_parts(&self, site: Option<SimSite>, parts: &[&str]) {
        let at_ms = self.now_ms();
        let mut g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let text = g.text.push_parts(parts);
        g.meta.push(EventMeta::new(at_ms, site, text));
    }

    /// Appends the event of a call the gate admitted on `site`; it reads as
    /// `call <service> <kind>`.
    pub(crate) fn record_call(&self, site: SimSite, kind: CallKind) {
        let at_ms = self.now_ms();
        let mut g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let kind = g.kind_index(kind);
        g.meta.push(EventMeta::call(at_ms, site, kind));
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
        let mut out = Vec::with_capacity(g.meta.len());
        g.for_each(|m, text| {
            out.push(SimEvent {
                at_ms: m.at_ms,
                site: m.site(),
                text: text.to_string(),
            });
        });
        out
    }

    /// Calls `f` with the digest line of every event, in order, under the lock.
    pub(crate) fn for_each_line(&self, mut f: impl FnMut(&str)) {
        let g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let mut line = String::new();
        g.for_each(|m, text| {
            line.clear();
            let _ = write!(
                line,
                "{:>10} {:<6} {}",
                m.at_ms,
                m.site().unwrap_or("-"),
                text
            );
            f(&line);
        });
    }
}

/// Appends `n` in decimal, as `Display` writes it, without the general formatter.
pub(crate) fn push_i64(s: &mut String, n: i64) {
    s.push_str(itoa::Buffer::new().format(n));
}

/// Appends `n` in decimal, as `Display` writes it, without the general formatter.
pub(crate) fn push_u64(s: &mut String, n: u64) {
    s.push_str(itoa::Buffer::new().format(n));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        let edges = [i64::MAX, -1, -90, i64::MIN];
        for n in (0..1_000).chain([86_400_000]).chain(edges) {
            let mut s = String::new();
            push_i64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for n in (0..2_000).chain([99_999, 100_000, 1_700_000_000_123, u64::MAX]) {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn lines_written_in_parts_read_back_whole_across_chunks() {
        let mut lines = Lines::default();
        let mut ends = Vec::new();
        let mut expected = Vec::new();
        for i in 0..3_000 {
            let n = i.to_string();
            let pad = "x".repeat(i % 97);
            ends.push(if i % 2 == 0 {
                lines.push_parts(&["volume ", &n, " ", &pad, " managing"])
            } else {
                lines.push(format_args!("volume {n} {pad} managing"))
            });
            expected.push(format!("volume {n} {pad} managing"));
        }
        assert!(lines.text.len() > 2, "the lines span several chunks");
        let read: Vec<&str> = lines.lines(ends.into_iter()).collect();
        assert_eq!(read, expected);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn admitted_calls_read_like_recorded_lines() {
        let log = EventLog::new();
        log.record(Some(SimSite::A), "site down");
        log.record_call(SimSite::B, CallKind::GetServer);
        log.record_call(SimSite::A, CallKind::Array("copy_volume"));
        log.record_with(None, |s| s.push_str("fault rule 1 installed"));
        log.record_call(SimSite::B, CallKind::GetServer);
        log.record_parts(Some(SimSite::A), &["server ", "s-1", " BUILD"]);
        let texts: Vec<String> = log.snapshot().into_iter().map(|e| e.line()).collect();
        assert_eq!(
            texts,
            [
                "         0 site-a site down",
                "         0 site-b call nova get_server",
                "         0 site-a call flasharray copy_volume",
                "         0 -      fault rule 1 installed",
                "         0 site-b call nova get_server",
                "         0 site-a server s-1 BUILD",
            ]
        );
        let mut lines = Vec::new();
        log.for_each_line(|l| lines.push(l.to_owned()));
        assert_eq!(lines, texts);
    }
}
