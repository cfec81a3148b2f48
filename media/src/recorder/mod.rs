//! The recorder's media side (issue 13), started: a sans-IO per-track WebM writer.
//!
//! [`track`] writes one track (remux only) to any `io::Write`; [`frame`] is what it takes,
//! converted from str0m's frame-mode `MediaData`; [`timeline`] maps RTP ticks to monotonic
//! milliseconds and records gaps; [`codec`] holds what differs per codec (ids, private data).
//!
//! No jitter buffer here: str0m's frame mode (the default, `rtc.set_rtp_mode(false)`) already
//! reorders packets, retransmits from NACK/RTX and hands over whole depacketized frames, so the
//! writer only has to place them in time.
pub mod codec;
pub mod frame;
pub mod timeline;
pub mod track;

pub use codec::Codec;
pub use frame::Frame;
pub use timeline::{Gap, GapKind};
pub use track::{TrackError, TrackWriter};
