//! Container writing shared by the readers that store or send media in a container.
//!
//! Owns: fragmented MP4 (`fmp4`, the only file naming mp4-atom): init segments, one
//! fragment per group of frames or per frame, and reading back what repair needs; reading
//! an MP4 file's H.264 track (`mp4read`, for file sources); the MPEG-2 transport stream
//! (`ts`, for the stream-viewer API's players). Does not own: files, sockets, timing or
//! when to cut (the recorder, and the live view, decide those).

pub mod fmp4;
pub mod mp4read;
pub mod ts;
