//! Container writing shared by the readers that store or send media in a container.
//!
//! Owns: fragmented MP4 (`fmp4`, the only file naming mp4-atom): init segments, one
//! fragment per group of frames, and reading back what repair needs. Does not own: files,
//! sockets, timing or when to cut (the recorder, and the live view, decide those).

pub mod fmp4;
pub mod mp4read;
