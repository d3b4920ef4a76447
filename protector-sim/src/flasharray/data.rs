//! The data a simulated volume holds, reduced to one number: its write sequence.
//!
//! A volume that is being written advances by one write per second of virtual time.
//! The sequence is computed lazily (`base` plus the whole seconds elapsed since
//! `since`), so no background task ever runs; snapshots and copies capture the value
//! at their creation time, which is how a scenario measures how many writes a
//! failover lost.

/// Virtual milliseconds per write.
pub const MS_PER_WRITE: i64 = 1_000;

/// The write sequence of one volume (or of one replica of a pod volume).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Data {
    /// Writes up to `since` (or in total, when not writing).
    base: u64,
    /// While writing: the instant from which whole seconds count as further writes.
    since: Option<i64>,
}

impl Data {
    /// Data frozen at `seq` writes.
    pub(crate) fn at_seq(seq: u64) -> Self {
        Self {
            base: seq,
            since: None,
        }
    }

    /// The write sequence at `now_ms`.
    pub(crate) fn seq(&self, now_ms: i64) -> u64 {
        match self.since {
            Some(since) => self.base.saturating_add(whole_writes(since, now_ms)),
            None => self.base,
        }
    }

    /// Whether writes are accruing.
    #[cfg(test)]
    pub(crate) fn is_accruing(&self) -> bool {
        self.since.is_some()
    }

    /// Folds the writes up to `now_ms` into `base` and continues (or starts, or stops)
    /// accruing according to `writing`. A volume that keeps writing keeps the phase of
    /// its one-second cadence, so checkpoints never lose or invent writes.
    pub(crate) fn checkpoint(&mut self, now_ms: i64, writing: bool) {
        match (self.since, writing) {
            (Some(since), true) => {
                let whole = whole_writes(since, now_ms);
                self.base = self.base.saturating_add(whole);
                let step = i64::try_from(whole)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(MS_PER_WRITE);
                self.since = Some(since.saturating_add(step));
            }
            (Some(since), false) => {
                self.base = self.base.saturating_add(whole_writes(since, now_ms));
                self.since = None;
            }
            (None, true) => self.since = Some(now_ms),
            (None, false) => {}
        }
    }
}

fn whole_writes(since: i64, now_ms: i64) -> u64 {
    u64::try_from(now_ms.saturating_sub(since).max(0) / MS_PER_WRITE).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_advances_one_write_per_second_only_while_writing() {
        let mut d = Data::default();
        assert_eq!(d.seq(5_000), 0);
        d.checkpoint(1_000, true);
        assert_eq!(d.seq(11_000), 10);
        d.checkpoint(11_500, false);
        assert_eq!(d.seq(60_000), 10);
    }

    #[test]
    fn checkpoints_while_writing_keep_the_cadence() {
        let mut d = Data::default();
        d.checkpoint(0, true);
        d.checkpoint(1_500, true);
        d.checkpoint(2_700, true);
        assert_eq!(d.seq(3_000), 3);
        assert!(d.is_accruing());
        assert_eq!(Data::at_seq(7).seq(99_000), 7);
    }
}
