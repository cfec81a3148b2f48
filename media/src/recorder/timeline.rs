//! RTP ticks to track milliseconds: monotonic, wraparound-safe, gaps recorded.
//!
//! Pure arithmetic on the frames' own timestamps (no clock is read), so a recording made
//! twice from the same frames is byte-identical.

/// A forward jump longer than this is recorded as a gap (muted, DTX silence, a stall).
pub const DEFAULT_GAP_THRESHOLD_MS: u64 = 500;

/// A forward jump longer than this is not believed: it is a new timebase (another SSRC, a
/// restarted sender), handled like a backward jump. One hour; the i32 delta itself reaches
/// about 6.6 h at 90 kHz.
const MAX_FORWARD_JUMP_MS: u64 = 3_600_000;

/// A backward step shorter than this is a late frame: it is clamped to the last timestamp
/// instead of starting a new timebase.
const MAX_BACKWARD_CLAMP_MS: u64 = 1_000;

/// Why the track's time did not advance as the RTP clock said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapKind {
    /// The RTP time jumped forward past the threshold; the track follows it (the file has no
    /// frames for `skipped_ms`).
    Jump,
    /// The RTP time went backwards or jumped implausibly far: a new timebase. The track goes
    /// on one frame interval after the last frame; the real length of the gap is unknown here.
    Discontinuity,
    /// The caller said the next frame starts a new timebase `skipped_ms` later
    /// ([`Timeline::resync`]), e.g. from wall clock after a bridge migration.
    Resync,
}

/// A gap in a track, in the track's own milliseconds, for the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Timestamp of the last frame before the gap.
    pub at_ms: u64,
    /// How far the track's time moved past the usual frame interval across the gap.
    pub skipped_ms: u64,
    pub kind: GapKind,
}

/// Maps each frame's 32-bit RTP time to milliseconds since the track's first frame.
#[derive(Debug, Clone)]
pub struct Timeline {
    gap_threshold_ms: u64,
    /// RTP time of the previous frame and its clock rate.
    last_rtp: Option<(u32, u32)>,
    /// Ticks since the start of the current timebase (extended, never wraps).
    ticks: i64,
    /// Track milliseconds where the current timebase starts.
    base_ms: u64,
    last_ms: u64,
    /// The last positive frame-to-frame step, used to place a frame after a discontinuity.
    last_step_ms: u64,
    pending_resync: Option<u64>,
    gaps: Vec<Gap>,
}

impl Timeline {
    /// Forward jumps longer than `gap_threshold_ms` are recorded as gaps.
    pub fn new(gap_threshold_ms: u64) -> Self {
        Timeline {
            gap_threshold_ms,
            last_rtp: None,
            ticks: 0,
            base_ms: 0,
            last_ms: 0,
            last_step_ms: 20,
            pending_resync: None,
            gaps: Vec::new(),
        }
    }

    /// The next frame starts a new timebase, `gap_ms` after the last frame.
    pub fn resync(&mut self, gap_ms: u64) {
        self.pending_resync = Some(gap_ms);
    }

    /// Track milliseconds for a frame. Never less than the previous frame's.
    pub fn place(&mut self, rtp_time: u32, clock_rate: u32) -> u64 {
        let clock_rate = clock_rate.max(1);
        let Some((last_rtp, last_rate)) = self.last_rtp else {
            self.last_rtp = Some((rtp_time, clock_rate));
            return 0;
        };
        self.last_rtp = Some((rtp_time, clock_rate));
        if let Some(gap_ms) = self.pending_resync.take() {
            self.gaps.push(Gap { at_ms: self.last_ms, skipped_ms: gap_ms, kind: GapKind::Resync });
            return self.restart(self.last_ms + gap_ms.max(1));
        }
        if last_rate != clock_rate {
            return self.discontinuity();
        }
        // Wraparound: the difference of two u32 read as i32 is the short way round.
        let delta = i64::from(rtp_time.wrapping_sub(last_rtp) as i32);
        let rate = i64::from(clock_rate);
        let delta_ms = delta.unsigned_abs() * 1000 / rate as u64;
        if delta < 0 {
            if delta_ms > MAX_BACKWARD_CLAMP_MS {
                return self.discontinuity();
            }
            // A late frame: keep the ticks where they were, clamp the output.
            self.last_rtp = Some((last_rtp, clock_rate));
            return self.last_ms;
        }
        if delta_ms > MAX_FORWARD_JUMP_MS {
            return self.discontinuity();
        }
        self.ticks += delta;
        let ms = (self.base_ms + (self.ticks * 1000 / rate) as u64).max(self.last_ms);
        let step = ms - self.last_ms;
        if step > self.gap_threshold_ms {
            self.gaps.push(Gap {
                at_ms: self.last_ms,
                skipped_ms: step.saturating_sub(self.last_step_ms),
                kind: GapKind::Jump,
            });
        } else if step > 0 {
            self.last_step_ms = step;
        }
        self.last_ms = ms;
        ms
    }

    fn discontinuity(&mut self) -> u64 {
        self.gaps.push(Gap { at_ms: self.last_ms, skipped_ms: 0, kind: GapKind::Discontinuity });
        self.restart(self.last_ms + self.last_step_ms)
    }

    fn restart(&mut self, at_ms: u64) -> u64 {
        self.ticks = 0;
        self.base_ms = at_ms;
        self.last_ms = at_ms;
        at_ms
    }

    /// The usual frame-to-frame step (ms) seen so far, e.g. to give the last frame a length.
    pub fn last_step_ms(&self) -> u64 {
        self.last_step_ms
    }

    /// Milliseconds of the last frame placed (0 before any).
    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }

    pub fn gaps(&self) -> &[Gap] {
        &self.gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opus frames every 20 ms at 48 kHz, starting 1 s before the u32 wraps.
    #[test]
    fn wraparound_keeps_counting() {
        let mut t = Timeline::new(DEFAULT_GAP_THRESHOLD_MS);
        let start = u32::MAX - 48_000 + 1;
        let ms: Vec<u64> = (0..100u32).map(|i| t.place(start.wrapping_add(i * 960), 48_000)).collect();
        assert_eq!(ms[0], 0);
        assert_eq!(ms[50], 1000, "the frame right after the wrap");
        assert_eq!(ms[99], 1980);
        assert!(ms.windows(2).all(|w| w[1] == w[0] + 20));
        assert!(t.gaps().is_empty());
    }

    /// 90 kHz video stays exact over many frames (no per-frame rounding drift).
    #[test]
    fn no_drift_at_90khz() {
        let mut t = Timeline::new(DEFAULT_GAP_THRESHOLD_MS);
        let mut last = 0;
        for i in 0..=900u32 {
            last = t.place(7u32.wrapping_add(i * 3000), 90_000);
        }
        assert_eq!(last, 30_000);
    }

    #[test]
    fn forward_jump_is_a_gap_and_time_follows_it() {
        let mut t = Timeline::new(500);
        for i in 0..10u32 {
            t.place(i * 960, 48_000);
        }
        // Muted for 3 s: the next frame is 3 s + 20 ms after the last.
        let ms = t.place(9 * 960 + 3 * 48_000 + 960, 48_000);
        assert_eq!(ms, 180 + 3020);
        assert_eq!(t.gaps(), &[Gap { at_ms: 180, skipped_ms: 3000, kind: GapKind::Jump }]);
        // Frames after the gap continue at 20 ms steps.
        assert_eq!(t.place(9 * 960 + 3 * 48_000 + 2 * 960, 48_000), 3220);
    }

    #[test]
    fn backward_jump_starts_a_new_timebase_one_step_later() {
        let mut t = Timeline::new(500);
        for i in 0..50u32 {
            t.place(1_000_000 + i * 960, 48_000);
        }
        assert_eq!(t.last_ms(), 980);
        // A new SSRC starting at a random, lower RTP time.
        assert_eq!(t.place(5, 48_000), 1000);
        assert_eq!(t.place(5 + 960, 48_000), 1020);
        assert_eq!(t.gaps().len(), 1);
        assert_eq!(t.gaps()[0].kind, GapKind::Discontinuity);
        assert_eq!(t.gaps()[0].at_ms, 980);
    }

    #[test]
    fn implausible_forward_jump_is_a_discontinuity() {
        let mut t = Timeline::new(500);
        t.place(0, 90_000);
        t.place(3000, 90_000);
        // Two hours ahead at 90 kHz: a new timebase, not a two-hour hole.
        assert_eq!(t.place(3000 + 2 * 3600 * 90_000, 90_000), 66);
        assert_eq!(t.gaps()[0].kind, GapKind::Discontinuity);
    }

    #[test]
    fn late_frame_is_clamped_not_reordered() {
        let mut t = Timeline::new(500);
        t.place(0, 48_000);
        t.place(960, 48_000);
        t.place(1920, 48_000);
        assert_eq!(t.place(960, 48_000), 40, "clamped to the last timestamp");
        assert_eq!(t.place(2880, 48_000), 60, "and the next one is where it belongs");
        assert!(t.gaps().is_empty());
    }

    #[test]
    fn resync_places_the_next_frame_after_the_given_gap() {
        let mut t = Timeline::new(500);
        t.place(100, 90_000);
        t.place(3100, 90_000);
        t.resync(2500);
        assert_eq!(t.place(42, 90_000), 33 + 2500);
        assert_eq!(t.place(3042, 90_000), 33 + 2500 + 33);
        assert_eq!(t.gaps()[0].kind, GapKind::Resync);
        assert_eq!(t.gaps()[0].skipped_ms, 2500);
    }
}
