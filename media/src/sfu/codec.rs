//! What the bridge reads in RTP payloads: which packets start a keyframe (a receive slot
//! switches source or layer only there), the picture height a VP8 keyframe announces (the
//! simulcast layers' real heights) and the width of a VP8 picture id (rewritten per slot).
//! VP8's payload descriptor is parsed by str0m (`Vp8Descriptor`); str0m keeps its H.264
//! keyframe detector private, so the few lines of RFC 6184 NAL typing are here.
use str0m::format::Codec;
use str0m::rtp::Vp8Descriptor;

use crate::recorder::Codec as RecorderCodec;

/// The packet is the first of a keyframe (audio: any packet starts a stream).
pub fn starts_keyframe(codec: Codec, payload: &[u8], vp8: Option<&Vp8Descriptor>) -> bool {
    match codec {
        Codec::Opus => true,
        Codec::Vp8 => vp8.is_some_and(|d| d.starts_keyframe(payload)),
        Codec::H264 => h264_starts_keyframe(payload),
        _ => false,
    }
}

/// H.264 (RFC 6184): a single SPS/IDR NAL unit, a STAP-A holding one, or the first fragment
/// of an FU-A carrying one.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let is_key = |t: u8| t == IDR || t == SPS;
    let Some(&first) = payload.first() else { return false };
    match first & 0x1f {
        STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if size == 0 || rest.len() < 2 + size {
                    return false;
                }
                if is_key(rest[2] & 0x1f) {
                    return true;
                }
                rest = &rest[2 + size..];
            }
            false
        }
        FU_A => payload.get(1).is_some_and(|&h| h & 0x80 != 0 && is_key(h & 0x1f)),
        t => is_key(t),
    }
}

/// Height of a VP8 keyframe from the first packet of the frame. The payload descriptor
/// before the frame is 1 to 6 bytes; the frame header (the recorder's parser: RFC 6386 §9.1
/// frame tag, start code, size) finds where the frame begins.
pub fn vp8_keyframe_height(payload: &[u8]) -> Option<u32> {
    (1..=6).find_map(|off| RecorderCodec::Vp8.keyframe_size(payload.get(off..)?).map(|(_, h)| h))
}

/// The VP8 picture id is 15 bits wide (RFC 7741 §4.2: X, then I, then M set); str0m's
/// descriptor gives its value, and its patch keeps the width.
pub fn vp8_wide_picture_id(payload: &[u8]) -> bool {
    matches!(payload, [x, i, m, ..] if x & 0x80 != 0 && i & 0x80 != 0 && m & 0x80 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_start_and_height() {
        // Descriptor X=1 S=1 PID=0, I=1 with a 15-bit picture id, then a keyframe header.
        let kf = [0x90, 0x80, 0x81, 0x23, 0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xd0, 0x02, 0];
        let d = Vp8Descriptor::parse(&kf).unwrap();
        assert!(starts_keyframe(Codec::Vp8, &kf, Some(&d)));
        assert_eq!(vp8_keyframe_height(&kf), Some(720));
        // The same frame's continuation (S=0) and an interframe (P=1) start nothing.
        let mut cont = kf;
        cont[0] = 0x80;
        let d = Vp8Descriptor::parse(&cont).unwrap();
        assert!(!starts_keyframe(Codec::Vp8, &cont, Some(&d)));
        let mut inter = kf;
        inter[4] = 0x11;
        let d = Vp8Descriptor::parse(&inter).unwrap();
        assert!(!starts_keyframe(Codec::Vp8, &inter, Some(&d)));
        assert_eq!(vp8_keyframe_height(&inter), None);
        assert!(!starts_keyframe(Codec::Vp8, &kf, None));
        assert!(vp8_wide_picture_id(&kf));
        assert!(!vp8_wide_picture_id(&[0x90, 0x80, 0x23, 0x10]));
    }

    #[test]
    fn h264_nal_types() {
        assert!(starts_keyframe(Codec::H264, &[0x65, 1, 2], None), "IDR");
        assert!(starts_keyframe(Codec::H264, &[0x67, 1, 2], None), "SPS");
        assert!(!starts_keyframe(Codec::H264, &[0x41, 1, 2], None), "non-IDR slice");
        // STAP-A: an SEI (6) then an SPS.
        assert!(starts_keyframe(Codec::H264, &[0x78, 0, 2, 0x06, 9, 0, 2, 0x67, 1], None));
        assert!(!starts_keyframe(Codec::H264, &[0x78, 0, 2, 0x06, 9, 0, 9, 0x67], None), "truncated");
        // FU-A: the start fragment of an IDR, then a middle one.
        assert!(starts_keyframe(Codec::H264, &[0x7c, 0x85, 1], None));
        assert!(!starts_keyframe(Codec::H264, &[0x7c, 0x05, 1], None));
        assert!(starts_keyframe(Codec::Opus, &[], None));
    }
}
