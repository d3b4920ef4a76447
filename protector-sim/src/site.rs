//! The two simulated sites.

use std::fmt;
use std::str::FromStr;

/// One of the world's two sites, each an OpenStack cloud with its own FlashArray.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimSite {
    /// `site-a`, with `array-a`.
    A,
    /// `site-b`, with `array-b`.
    B,
}

impl SimSite {
    /// Both sites.
    pub const BOTH: [SimSite; 2] = [SimSite::A, SimSite::B];

    /// `site-a` / `site-b`.
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "site-a",
            Self::B => "site-b",
        }
    }

    /// `array-a` / `array-b`.
    pub fn array_name(self) -> &'static str {
        match self {
            Self::A => "array-a",
            Self::B => "array-b",
        }
    }

    /// The other site.
    pub fn peer(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    /// The site whose array is named `array`.
    pub fn of_array(array: &str) -> Option<Self> {
        Self::BOTH.into_iter().find(|s| s.array_name() == array)
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }
}

impl fmt::Display for SimSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SimSite {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "site-a" | "a" | "A" => Ok(Self::A),
            "site-b" | "b" | "B" => Ok(Self::B),
            other => Err(format!("unknown site '{other}': expected site-a or site-b")),
        }
    }
}
