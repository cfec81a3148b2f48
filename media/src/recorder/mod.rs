//! The recorder's media side (issue 13): a sans-IO session per recording and a per-track
//! WebM writer.
//!
//! [`session`] is one recording: a str0m receiver as the bridge's hidden endpoint, following
//! the bridge's slot map ([`slotmap`]), a writer per source track, [`manifest`] kept in step,
//! all into a [`sink`] (a directory). [`track`] writes one track (remux only) to any
//! `io::Write`; [`frame`] is what it takes,
//! converted from str0m's frame-mode `MediaData`; [`timeline`] maps RTP ticks to monotonic
//! milliseconds and records gaps; [`codec`] holds what differs per codec (ids, private data).
//!
//! The `convene-recorder` binary's I/O around it: [`control`] (the connection to signaling's
//! `/recorder`, one task per recording), [`http`] (probes, `/metrics`, `/load`, `/drain`),
//! [`metrics`] (the Prometheus registry), [`run`] (a session over its UDP socket), [`finish`]
//! (what follows the capture), [`config`]
//! and [`layout`] (where the files go).
//! [`compose`] makes `recording.webm` from the tracks after the capture (ffmpeg); [`stitch`]
//! makes it from every segment of an interrupted recording.
//! [`upload`] sends the files to S3-compatible storage while recording and after it.
//!
//! No jitter buffer here: str0m's frame mode (the default, `rtc.set_rtp_mode(false)`) already
//! reorders packets, retransmits from NACK/RTX and hands over whole depacketized frames, so the
//! writer only has to place them in time.
pub mod codec;
pub mod compose;
pub mod config;
pub mod control;
pub mod finish;
pub mod frame;
pub mod http;
pub mod layout;
pub mod manifest;
pub mod metrics;
pub mod run;
pub mod session;
pub mod sink;
pub mod slotmap;
pub mod stitch;
pub mod timeline;
pub mod track;
pub mod upload;

pub use codec::Codec;
pub use frame::Frame;
pub use manifest::Manifest;
pub use session::{Poll, RecorderSession, SessionConfig};
pub use sink::{DirSink, Sink};
pub use timeline::{Gap, GapKind};
pub use track::{TrackError, TrackWriter};
