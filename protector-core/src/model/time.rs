//! RFC 3339 text of UTC timestamps, written into a fixed buffer.
//!
//! chrono's `Serialize` for `DateTime<Utc>` goes through `Display`, which a JSON
//! serializer receives piece by piece (a character at a time for the separators); a
//! store that encodes thousands of members or journal entries writes each timestamp in
//! one piece instead, with exactly chrono's text.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};

/// How many digits of the fraction of a second to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fraction {
    /// Always nine (`SecondsFormat::Nanos`).
    Nanos,
    /// None, three, six or nine: as few as the value needs (`SecondsFormat::AutoSi`,
    /// what chrono's `Serialize` writes).
    Auto,
}

impl Fraction {
    fn chrono(self) -> SecondsFormat {
        match self {
            Self::Nanos => SecondsFormat::Nanos,
            Self::Auto => SecondsFormat::AutoSi,
        }
    }
}

/// A timestamp's RFC 3339 text with `Z`, as `to_rfc3339_opts(format, true)` writes
/// it, without allocating.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rfc3339 {
    text: [u8; 30],
    len: usize,
}

impl Rfc3339 {
    /// The text of `t`, for the years 0000–9999 outside leap seconds (the fixed-width
    /// cases); `None` otherwise.
    pub(crate) fn new(t: &DateTime<Utc>, fraction: Fraction) -> Option<Self> {
        let n = t.naive_utc();
        let year = u32::try_from(n.year()).ok().filter(|y| *y <= 9999)?;
        let nanos = n.nanosecond();
        if nanos >= 1_000_000_000 {
            return None;
        }
        let mut text = *b"0000-00-00T00:00:00.000000000Z";
        digits(&mut text[0..4], year);
        digits(&mut text[5..7], n.month());
        digits(&mut text[8..10], n.day());
        digits(&mut text[11..13], n.hour());
        digits(&mut text[14..16], n.minute());
        digits(&mut text[17..19], n.second());
        let places = match fraction {
            Fraction::Nanos => 9,
            Fraction::Auto if nanos == 0 => 0,
            Fraction::Auto if nanos % 1_000_000 == 0 => 3,
            Fraction::Auto if nanos % 1_000 == 0 => 6,
            Fraction::Auto => 9,
        };
        let len = if places == 0 {
            text[19] = b'Z';
            20
        } else {
            digits(&mut text[20..29], nanos);
            text[20 + places] = b'Z';
            21 + places
        };
        Some(Self { text, len })
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }
}

/// `t` as `to_rfc3339_opts(fraction, true)` writes it.
pub(crate) fn rfc3339(t: &DateTime<Utc>, fraction: Fraction) -> String {
    Rfc3339::new(t, fraction).map_or_else(
        || t.to_rfc3339_opts(fraction.chrono(), true),
        |r| r.as_str().to_owned(),
    )
}

/// Serializes `t` exactly as chrono's `Serialize` does, in one string (for
/// `#[serde(serialize_with)]`).
pub(crate) fn serialize_utc<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    match Rfc3339::new(t, Fraction::Auto) {
        Some(text) => s.serialize_str(text.as_str()),
        None => t.serialize(s),
    }
}

/// Writes the last `out.len()` decimal digits of `value` into `out`, zero-padded.
fn digits(out: &mut [u8], mut value: u32) {
    for b in out.iter_mut().rev() {
        *b = b"0123456789"[(value % 10) as usize];
        value /= 10;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(Serialize)]
    struct Ours(#[serde(serialize_with = "serialize_utc")] DateTime<Utc>);

    /// Fixed edge cases and a seeded spread of instants, with fractions of every width.
    pub(crate) fn samples() -> Vec<DateTime<Utc>> {
        let mut out = vec![
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap(),
            Utc.timestamp_opt(1_483_228_799, 1_000_000_000).unwrap(),
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..4000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let secs = i64::try_from(seed % 253_402_300_800).unwrap();
            let nanos = u32::try_from((seed >> 20) % 1_000_000_000).unwrap();
            // Every fraction width: whole seconds, milli-, micro- and nanoseconds.
            let nanos = match i % 4 {
                0 => 0,
                1 => nanos / 1_000_000 * 1_000_000,
                2 => nanos / 1_000 * 1_000,
                _ => nanos,
            };
            out.push(Utc.timestamp_opt(secs, nanos).unwrap());
        }
        out
    }

    #[test]
    fn the_text_is_chronos_for_both_fraction_widths() {
        for t in samples() {
            for fraction in [Fraction::Nanos, Fraction::Auto] {
                assert_eq!(
                    rfc3339(&t, fraction),
                    t.to_rfc3339_opts(fraction.chrono(), true),
                    "{t:?} {fraction:?}"
                );
            }
        }
    }

    #[test]
    fn serialized_timestamps_are_what_chrono_serializes() {
        for t in samples() {
            assert_eq!(
                serde_json::to_string(&Ours(t)).unwrap(),
                serde_json::to_string(&t).unwrap(),
                "{t:?}"
            );
        }
    }

    #[test]
    fn only_fixed_width_instants_are_written_directly() {
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        assert!(Rfc3339::new(&far, Fraction::Auto).is_none());
        let leap = Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap();
        assert!(Rfc3339::new(&leap, Fraction::Nanos).is_none());
        let plain = Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap();
        assert_eq!(
            Rfc3339::new(&plain, Fraction::Auto).map(|r| r.as_str().to_owned()),
            Some("2026-12-06T10:00:00Z".to_owned())
        );
    }
}
