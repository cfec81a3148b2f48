//! RTP header rewriting for one receive slot: the slot's outgoing stream is one continuous
//! stream although the packets come from whichever source and simulcast layer it carries now.
//! Every layer has its own sequence numbers, RTP time base and VP8 picture ids; on a switch
//! (always at the first packet of a keyframe) the offsets are re-based so that the receiver
//! sees the next sequence number, RTP time advanced by the wall time since the last packet,
//! and the next picture id. Pure: no str0m state, time passed in.
use std::time::Instant;

/// What the incoming packet carries that is rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct In {
    /// Extended sequence number (str0m's `SeqNo`).
    pub seq: u64,
    /// Extended RTP time in the codec's clock rate.
    pub time: u64,
    pub clock_rate: u32,
    /// VP8 payload descriptor fields, if the packet is VP8 and has them.
    pub vp8: Option<Vp8Ids>,
}

/// VP8 picture id (with its width: 7 or 15 bits) and TL0PICIDX, as present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Ids {
    pub picture_id: Option<(u16, bool)>,
    pub tl0_pic_idx: Option<u8>,
}

/// The rewritten header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Out {
    pub seq: u64,
    pub time: u32,
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
}

#[derive(Debug, Default)]
pub struct Rewriter {
    /// Outgoing = incoming + offset (wrapping); re-based on every switch.
    seq_offset: u64,
    time_offset: u64,
    pid_offset: u16,
    tl0_offset: u8,
    /// First incoming sequence number of the current layer: older packets of it (reordered
    /// or retransmitted from before the switch) would collide with what was sent before.
    switched_at: u64,
    /// Highest outgoing values so far, and when the highest time was sent.
    last_seq: Option<u64>,
    last_time: Option<(u64, Instant, u32)>,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
}

impl Rewriter {
    /// Rewrite one packet; `switched` when it is the first packet of a new source or layer
    /// (a keyframe start). `None`: a packet of the current layer from before its switch.
    pub fn rewrite(&mut self, p: In, switched: bool, now: Instant) -> Option<Out> {
        if switched {
            self.rebase(p, now);
        } else if p.seq < self.switched_at {
            return None;
        }
        let seq = p.seq.wrapping_add(self.seq_offset);
        let time = p.time.wrapping_add(self.time_offset);
        if self.last_seq.is_none_or(|l| seq > l) {
            self.last_seq = Some(seq);
        }
        if self.last_time.is_none_or(|(l, _, hz)| time > l || hz != p.clock_rate) {
            self.last_time = Some((time, now, p.clock_rate));
        }
        let vp8 = p.vp8.unwrap_or(Vp8Ids { picture_id: None, tl0_pic_idx: None });
        let picture_id = vp8.picture_id.map(|(id, wide)| {
            let out = id.wrapping_add(self.pid_offset) & pid_mask(wide);
            if self.last_pid.is_none_or(|l| newer(out, l, wide)) {
                self.last_pid = Some(out);
            }
            out
        });
        let tl0_pic_idx = vp8.tl0_pic_idx.map(|t| {
            let out = t.wrapping_add(self.tl0_offset);
            if self.last_tl0.is_none_or(|l| (out.wrapping_sub(l) as i8) > 0) {
                self.last_tl0 = Some(out);
            }
            out
        });
        Some(Out { seq, time: time as u32, picture_id, tl0_pic_idx })
    }

    fn rebase(&mut self, p: In, now: Instant) {
        self.switched_at = p.seq;
        // The first packet ever keeps its own numbers.
        if let Some(last) = self.last_seq {
            self.seq_offset = (last + 1).wrapping_sub(p.seq);
        }
        if let Some((last, at, hz)) = self.last_time
            && hz == p.clock_rate
        {
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            let expected = last + ((elapsed * f64::from(hz)) as u64).max(1);
            self.time_offset = expected.wrapping_sub(p.time);
        }
        if let Some(vp8) = p.vp8 {
            if let (Some((id, wide)), Some(last)) = (vp8.picture_id, self.last_pid) {
                self.pid_offset = last.wrapping_add(1).wrapping_sub(id) & pid_mask(wide);
            }
            if let (Some(t), Some(last)) = (vp8.tl0_pic_idx, self.last_tl0) {
                self.tl0_offset = last.wrapping_add(1).wrapping_sub(t);
            }
        }
    }
}

fn pid_mask(wide: bool) -> u16 {
    if wide { 0x7fff } else { 0x7f }
}

/// `a` is after `b` in picture-id order (half the id space ahead).
fn newer(a: u16, b: u16, wide: bool) -> bool {
    let mask = pid_mask(wide);
    let d = a.wrapping_sub(b) & mask;
    d != 0 && d <= mask / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn vp8(seq: u64, time: u64, pid: u16, tl0: u8) -> In {
        In {
            seq,
            time,
            clock_rate: 90_000,
            vp8: Some(Vp8Ids { picture_id: Some((pid, true)), tl0_pic_idx: Some(tl0) }),
        }
    }

    #[test]
    fn continuous_across_a_switch() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        // Layer A: kept as is from its first packet.
        let a1 = r.rewrite(vp8(100, 9000, 500, 7), true, t0).unwrap();
        assert_eq!((a1.seq, a1.time, a1.picture_id, a1.tl0_pic_idx), (100, 9000, Some(500), Some(7)));
        let a2 = r.rewrite(vp8(101, 12000, 501, 8), false, t0 + Duration::from_millis(33)).unwrap();
        assert_eq!((a2.seq, a2.picture_id, a2.tl0_pic_idx), (101, Some(501), Some(8)));
        // Layer B, 100 ms after A's last packet: the next number of everything, and the
        // RTP time moves by the wall time (100 ms = 9000 ticks at 90 kHz).
        let b1 = r.rewrite(vp8(40_000, 777_000, 32_760, 250), true, t0 + Duration::from_millis(133)).unwrap();
        assert_eq!((b1.seq, b1.picture_id, b1.tl0_pic_idx), (102, Some(502), Some(9)));
        assert_eq!(b1.time, 12000 + 9000);
        // B's later packets follow B's own numbering, and the picture id wraps at 15 bits.
        let b2 = r.rewrite(vp8(40_001, 780_000, 0, 251), false, t0 + Duration::from_millis(166)).unwrap();
        assert_eq!((b2.seq, b2.time, b2.picture_id, b2.tl0_pic_idx), (103, 24000, Some(510), Some(10)));
        // A packet of B from before the switch (reordered) would reuse a sent number: refused.
        assert_eq!(r.rewrite(vp8(39_999, 774_000, 32_759, 250), false, t0), None);
        // A retransmission after the switch point keeps its place.
        assert_eq!(r.rewrite(vp8(40_000, 777_000, 32_760, 250), false, t0).unwrap().seq, 102);
    }

    #[test]
    fn switching_back_continues_from_the_highest_number() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        let audio = |seq, time| In { seq, time, clock_rate: 48_000, vp8: None };
        r.rewrite(audio(10, 960), true, t0);
        r.rewrite(audio(12, 2880), false, t0);
        r.rewrite(audio(11, 1920), false, t0); // late: does not lower the high-water mark
        let o = r.rewrite(audio(5, 100), true, t0 + Duration::from_millis(20)).unwrap();
        assert_eq!((o.seq, o.time), (13, 2880 + 960));
        // The stream's sequence numbers keep counting through 16-bit wrap (extended numbers).
        let o = r.rewrite(audio(65_535 + 5 - 12, 0), false, t0).unwrap();
        assert_eq!(o.seq, 65_536);
    }

    #[test]
    fn seven_bit_picture_ids_wrap_at_128() {
        let t0 = Instant::now();
        let mut r = Rewriter::default();
        let p = |seq, pid| In {
            seq,
            time: seq * 3000,
            clock_rate: 90_000,
            vp8: Some(Vp8Ids { picture_id: Some((pid, false)), tl0_pic_idx: None }),
        };
        assert_eq!(r.rewrite(p(1, 127), true, t0).unwrap().picture_id, Some(127));
        let o = r.rewrite(p(9, 40), true, t0).unwrap();
        assert_eq!((o.picture_id, o.tl0_pic_idx), (Some(0), None));
    }
}
