//! The HTTP side (JSON API, metrics, page): being built. For now: pure pieces.

pub mod merge_patch;
