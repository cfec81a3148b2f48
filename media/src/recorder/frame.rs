//! One frame as the writer takes it, and the conversion from str0m's frame-mode `MediaData`.

use str0m::media::MediaData;

/// A whole depacketized frame with its RTP time.
///
/// `rtp_time` is the RTP timestamp (ticks of `clock_rate`, 48 kHz for Opus, 90 kHz for video).
/// Only its low 32 bits count: the writer unwraps them itself, so a raw RTP timestamp and
/// str0m's per-stream extended time both work, and a new stream (another SSRC after a
/// migration) that starts elsewhere shows up as a discontinuity instead of a huge jump.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub rtp_time: u32,
    pub clock_rate: u32,
    /// Video: the frame decodes on its own. Ignored for audio (every frame is a keyframe).
    pub keyframe: bool,
    /// False when packets were lost before this frame (str0m's `MediaData::contiguous`):
    /// a video decoder cannot use inter frames until the next keyframe.
    pub contiguous: bool,
    pub data: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The frame str0m hands a receiver in frame mode (`Event::MediaData`).
    pub fn from_media_data(m: &'a MediaData) -> Self {
        Frame {
            // Truncation on purpose: see the type's doc.
            rtp_time: m.time.numer() as u32,
            clock_rate: m.time.denom(),
            keyframe: m.is_keyframe(),
            contiguous: m.contiguous,
            data: &m.data,
        }
    }
}
