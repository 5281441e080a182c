//! Helpers the unit tests share; `shared.rs` is also the integration tests' (by path).

mod shared;

pub(crate) use shared::{require, TempDir, XorShift};
