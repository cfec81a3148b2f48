//! Synthetic media a participant publishes: Opus-shaped audio every 20 ms and VP8-shaped
//! (optionally simulcast) video, written through str0m, which packetizes, encrypts and paces
//! it like any other frame. No codec runs: the bridge only needs valid VP8/Opus headers.
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::media::{Frequency, MediaTime, Mid, Rid};

/// Simulcast rids, low → high (as the web app sends them).
pub const RIDS: [&str; 3] = ["q", "h", "f"];
/// Heights put in VP8 keyframes, per simulcast layer (low → high).
pub const LAYER_HEIGHTS: [u32; 3] = [180, 360, 720];

const AUDIO_PTIME: Duration = Duration::from_millis(20);
/// Opus TOC byte: config 31 (CELT fullband, 20 ms), stereo, one frame.
const OPUS_TOC: u8 = 0xfc;

/// What to publish and how big each frame is.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    pub audio: bool,
    pub video: bool,
    pub simulcast: bool,
    pub fps: u32,
    /// Delta frame size per layer (low → high); without simulcast only the top one is used.
    pub frame_bytes: [usize; 3],
    pub keyframe_bytes: [usize; 3],
    /// Keyframes on every layer at least this often (more often on PLI/FIR).
    pub keyframe_interval: Duration,
    pub audio_bytes: usize,
    /// Audio level (RFC 6464, str0m convention: 0 loudest, -127 silence).
    pub audio_level: i8,
}

impl PublishConfig {
    /// `top_kbps` on the top layer, ¼ and 1/16 of it below (like a 720p/360p/180p ladder),
    /// keyframes three times a delta frame.
    pub fn from_bitrate(top_kbps: u32, fps: u32) -> PublishConfig {
        let fps = fps.max(1);
        let per_frame = |kbps: f64| ((kbps * 1000.0 / 8.0 / f64::from(fps)) as usize).max(16);
        let top = f64::from(top_kbps);
        let frame_bytes = [per_frame(top / 16.0), per_frame(top / 4.0), per_frame(top)];
        PublishConfig {
            audio: true,
            video: true,
            simulcast: true,
            fps,
            frame_bytes,
            keyframe_bytes: frame_bytes.map(|b| (b * 3).max(1000)),
            keyframe_interval: Duration::from_secs(10),
            audio_bytes: 80,
            audio_level: -30,
        }
    }

    fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.fps.max(1)
    }
}

/// Schedules and writes frames into one `Rtc`.
pub struct Publisher {
    pub cfg: PublishConfig,
    audio_mid: Option<Mid>,
    video_mid: Option<Mid>,
    next_audio: Instant,
    next_video: Instant,
    audio_ts: u64,
    video_ts: u64,
    want_keyframe: [bool; 3],
    last_keyframe: Instant,
    pub frames_sent: u64,
    pub bytes_sent: u64,
}

impl Publisher {
    /// `audio_mid`/`video_mid`: the sendonly m-lines to write to (`None`: nothing of that kind).
    pub fn new(cfg: PublishConfig, audio_mid: Option<Mid>, video_mid: Option<Mid>, now: Instant) -> Self {
        Publisher {
            audio_mid: audio_mid.filter(|_| cfg.audio),
            video_mid: video_mid.filter(|_| cfg.video),
            cfg,
            next_audio: now,
            next_video: now,
            audio_ts: 0,
            video_ts: 0,
            want_keyframe: [true; 3],
            last_keyframe: now,
            frames_sent: 0,
            bytes_sent: 0,
        }
    }

    /// When the next frame is due (`None`: nothing is published).
    pub fn next_due(&self) -> Option<Instant> {
        let a = self.audio_mid.map(|_| self.next_audio);
        let v = self.video_mid.map(|_| self.next_video);
        match (a, v) {
            (Some(a), Some(v)) => Some(a.min(v)),
            (a, v) => a.or(v),
        }
    }

    /// PLI/FIR from the bridge: a keyframe on that layer (top layer when no rid).
    pub fn request_keyframe(&mut self, rid: Option<&Rid>) {
        let idx = rid.and_then(|r| RIDS.iter().position(|x| *x == &**r)).unwrap_or(2);
        self.want_keyframe[idx] = true;
    }

    /// Write every frame that is due at `now` (at most one per stream: a late wake-up does not
    /// burst to catch up).
    pub fn write_due(&mut self, rtc: &mut Rtc, now: Instant) {
        if let Some(mid) = self.audio_mid
            && now >= self.next_audio
        {
            self.next_audio = advance(self.next_audio, AUDIO_PTIME, now);
            self.audio_ts += 960;
            let level = self.cfg.audio_level;
            if let Some(w) = rtc.writer(mid) {
                let pt = w.payload_params().find(|p| p.spec().codec.is_audio()).map(|p| p.pt());
                if let Some(pt) = pt {
                    let mut data = vec![0x55u8; self.cfg.audio_bytes.max(2)];
                    data[0] = OPUS_TOC;
                    let (n, t) = (data.len(), MediaTime::new(self.audio_ts, Frequency::FORTY_EIGHT_KHZ));
                    if w.audio_level(level, level > -100).write(pt, now, t, data).is_ok() {
                        self.frames_sent += 1;
                        self.bytes_sent += n as u64;
                    }
                }
            }
        }
        if let Some(mid) = self.video_mid
            && now >= self.next_video
        {
            let interval = self.cfg.frame_interval();
            self.next_video = advance(self.next_video, interval, now);
            self.video_ts += 90_000 / u64::from(self.cfg.fps.max(1));
            if now.duration_since(self.last_keyframe) >= self.cfg.keyframe_interval {
                self.want_keyframe = [true; 3];
                self.last_keyframe = now;
            }
            let layers = if self.cfg.simulcast { 0..3 } else { 2..3 };
            for l in layers {
                let key = std::mem::take(&mut self.want_keyframe[l]);
                let size = if key { self.cfg.keyframe_bytes[l] } else { self.cfg.frame_bytes[l] };
                let Some(mut w) = rtc.writer(mid) else { return };
                let Some(pt) = w.payload_params().find(|p| p.spec().codec.is_video()).map(|p| p.pt()) else {
                    return;
                };
                if self.cfg.simulcast {
                    w = w.rid(Rid::from(RIDS[l]));
                }
                let t = MediaTime::new(self.video_ts, Frequency::NINETY_KHZ);
                if w.write(pt, now, t, fake_vp8(key, LAYER_HEIGHTS[l], l as u8, size)).is_ok() {
                    self.frames_sent += 1;
                    self.bytes_sent += size as u64;
                } else if key {
                    self.want_keyframe[l] = true;
                }
            }
        }
    }
}

/// Next deadline on a fixed cadence; after a stall, restart from `now` instead of bursting.
fn advance(next: Instant, step: Duration, now: Instant) -> Instant {
    let n = next + step;
    if n <= now { now + step } else { n }
}

/// A fake VP8 frame: a valid keyframe header (RFC 6386 §9.1) with `height` (16:9 width), our
/// layer marker at byte 10, zero padding to `size`.
pub fn fake_vp8(key: bool, height: u32, layer: u8, size: usize) -> Vec<u8> {
    let mut f = vec![0u8; size.max(16)];
    f[0] = if key { 0x10 } else { 0x11 }; // bit0: 0 = keyframe; show_frame set
    f[1] = 0x02;
    if key {
        let w = (height * 16 / 9) as u16;
        f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        f[6..8].copy_from_slice(&w.to_le_bytes());
        f[8..10].copy_from_slice(&(height as u16).to_le_bytes());
    }
    f[10] = layer;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_from_bitrate() {
        let c = PublishConfig::from_bitrate(300, 15);
        // 300 kbit/s at 15 fps = 2500 bytes per frame; 1/4 and 1/16 below.
        assert_eq!(c.frame_bytes, [156, 625, 2500]);
        assert!(c.keyframe_bytes.iter().zip(c.frame_bytes).all(|(k, d)| *k >= d));
        assert_eq!(c.frame_interval(), Duration::from_nanos(66_666_666));
    }

    #[test]
    fn cadence_does_not_burst_after_a_stall() {
        let t0 = Instant::now();
        let step = Duration::from_millis(20);
        assert_eq!(advance(t0, step, t0 + Duration::from_millis(1)), t0 + step);
        let late = t0 + Duration::from_millis(500);
        assert_eq!(advance(t0, step, late), late + step);
    }

    #[test]
    fn keyframe_header() {
        let f = fake_vp8(true, 360, 1, 100);
        assert_eq!(f.len(), 100);
        assert_eq!(f[0] & 1, 0);
        assert_eq!(&f[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([f[8], f[9]]), 360);
        assert_eq!(f[10], 1);
        assert_eq!(fake_vp8(false, 360, 2, 4)[0] & 1, 1);
    }
}
