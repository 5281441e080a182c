//! Recording to the SD card as fragmented MP4 segments.
//!
//! Owns: crash repair (`repair`, pure of threads and config, on `mux::fmp4`'s boxes);
//! the writer (`recorder`: a hub tap, a bounded queue and thread "rec-<path>" that cuts
//! segments at IDRs, writes fragments every `part_duration` and fsyncs them) and its
//! counters (`meter`); names (`naming`) and retention (`retention`), both pure; one path's
//! directory (`store`: scan, repair at start, retention pass, room on a full disk); and the
//! safe mapping of API names to files (`library`).
//!
//! Why fragmented MP4: a plain MP4 keeps its sample index in a `moov` written at the end, so a
//! power cut leaves a file nothing can play. A fragmented file carries its index in each
//! fragment (`moof`) next to the samples (`mdat`), so everything up to the last complete
//! fragment stays playable, and `repair` only has to cut off the torn tail.

pub mod attach;
pub mod library;
pub mod meter;
pub mod recorder;
pub mod repair;
pub mod retention;
pub mod store;
