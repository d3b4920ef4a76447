//! protector-sim
#![deny(missing_docs)]
