//! What differs per codec in a WebM track: codec id, track type, codec private data, and
//! the picture size read from a keyframe. VP9/AV1/H264 are added here (H264 and AV1 need a
//! CodecPrivate built from their parameter sets / sequence header, which str0m hands over
//! in-band).

/// A codec the writer can remux.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Opus, 48 kHz. WebRTC always negotiates it as 2 channels (`opus/48000/2`); a mono stream
    /// is still valid in a 2-channel track, the decoder upmixes.
    Opus,
    /// VP8 video.
    Vp8,
}

/// Matroska TrackType values.
pub(crate) const TRACK_TYPE_VIDEO: u64 = 1;
pub(crate) const TRACK_TYPE_AUDIO: u64 = 2;

/// Opus: 80 ms of pre-roll after a seek, as the WebM Opus mapping asks (in ns).
pub(crate) const OPUS_SEEK_PRE_ROLL_NS: u64 = 80_000_000;

impl Codec {
    /// The Matroska CodecID.
    pub fn codec_id(self) -> &'static str {
        match self {
            Codec::Opus => "A_OPUS",
            Codec::Vp8 => "V_VP8",
        }
    }

    /// Video codecs need a keyframe to start decoding; audio frames all stand alone.
    pub fn is_video(self) -> bool {
        matches!(self, Codec::Vp8)
    }

    pub(crate) fn track_type(self) -> u64 {
        if self.is_video() { TRACK_TYPE_VIDEO } else { TRACK_TYPE_AUDIO }
    }

    /// CodecPrivate. Opus needs an `OpusHead` (RFC 7845 §5.1); VP8 has none.
    pub fn codec_private(self) -> Option<Vec<u8>> {
        match self {
            Codec::Opus => Some(opus_head(2)),
            Codec::Vp8 => None,
        }
    }

    /// The picture size carried by a keyframe, if this codec's keyframes carry it.
    pub fn keyframe_size(self, data: &[u8]) -> Option<(u32, u32)> {
        match self {
            Codec::Vp8 => vp8_keyframe_size(data),
            Codec::Opus => None,
        }
    }
}

/// RFC 7845 §5.1 identification header: version 1, channel count, pre-skip 0 (an RTP stream
/// carries no encoder delay), input rate 48 kHz, gain 0, mapping family 0.
fn opus_head(channels: u8) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1);
    head.push(channels);
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

/// RFC 6386 §9.1: a keyframe starts with a 3-byte frame tag (bit 0 clear), the start code
/// 9d 01 2a, then 14-bit width and height (2 scaling bits each), little endian.
fn vp8_keyframe_size(data: &[u8]) -> Option<(u32, u32)> {
    if data.len() < 10 || data[0] & 1 != 0 || data[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([data[6], data[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([data[8], data[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_head_is_19_bytes_with_48k() {
        let h = opus_head(2);
        assert_eq!(h.len(), 19);
        assert_eq!(&h[..8], b"OpusHead");
        assert_eq!(h[9], 2);
        assert_eq!(u32::from_le_bytes([h[12], h[13], h[14], h[15]]), 48_000);
    }

    #[test]
    fn vp8_size_from_keyframe_header() {
        // Frame tag (keyframe), start code, 320 x 240.
        let kf = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0, 0];
        assert_eq!(Codec::Vp8.keyframe_size(&kf), Some((320, 240)));
        let mut inter = kf;
        inter[0] |= 1;
        assert_eq!(Codec::Vp8.keyframe_size(&inter), None);
        assert_eq!(Codec::Vp8.keyframe_size(&kf[..5]), None);
    }
}
