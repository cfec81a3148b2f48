//! `convene-loadgen` flags (env fallbacks `CONVENE_LOADGEN_*`).
use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;

use super::publish::PublishConfig;
use super::stats::DropRules;
use convene_proto::media::ReceiverConstraints;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "convene-loadgen",
    version,
    about = "Simulated participants through convene-signaling: real ICE/DTLS/SRTP media via str0m",
    after_help = "Exit status: 0 when no participant dropped, 1 when one did (see the report's \
                  `reason`), 2 on bad flags or an unwritable report."
)]
pub struct Config {
    /// Signaling's client WebSocket.
    #[arg(long, env = "CONVENE_LOADGEN_SIGNALING_URL", default_value = "ws://127.0.0.1:8080/ws")]
    pub signaling_url: String,
    /// Participants in total.
    #[arg(long, env = "CONVENE_LOADGEN_PARTICIPANTS", default_value_t = 4)]
    pub participants: usize,
    /// Rooms; participants are spread round-robin (participant i joins room i mod M).
    #[arg(long, env = "CONVENE_LOADGEN_ROOMS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub rooms: u64,
    /// Room names are `<prefix><index>`.
    #[arg(long, env = "CONVENE_LOADGEN_ROOM_PREFIX", default_value = "load-")]
    pub room_prefix: String,
    /// Display names are `<prefix><index>`.
    #[arg(long, env = "CONVENE_LOADGEN_NAME_PREFIX", default_value = "loadgen-")]
    pub name_prefix: String,
    /// JWT passed in `join.token` (the same for every participant).
    #[arg(long, env = "CONVENE_LOADGEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Run this long, then leave and report; 0 = until SIGTERM/SIGINT.
    #[arg(long, env = "CONVENE_LOADGEN_DURATION_S", default_value_t = 60)]
    pub duration_s: u64,
    /// Delay between two joins.
    #[arg(long, env = "CONVENE_LOADGEN_RAMP_MS", default_value_t = 100)]
    pub ramp_ms: u64,
    /// Top simulcast layer bitrate; the lower layers get 1/4 and 1/16 of it.
    #[arg(long, env = "CONVENE_LOADGEN_VIDEO_KBPS", default_value_t = 300)]
    pub video_kbps: u32,
    #[arg(long, env = "CONVENE_LOADGEN_FPS", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub fps: u32,
    /// Seconds between periodic keyframes (keyframes also follow PLI/FIR).
    #[arg(long, env = "CONVENE_LOADGEN_KEYFRAME_INTERVAL_S", default_value_t = 10)]
    pub keyframe_interval_s: u64,
    /// Publish no audio.
    #[arg(long, env = "CONVENE_LOADGEN_NO_AUDIO")]
    pub no_audio: bool,
    /// Publish no video.
    #[arg(long, env = "CONVENE_LOADGEN_NO_VIDEO")]
    pub no_video: bool,
    /// One video layer instead of q/h/f simulcast.
    #[arg(long, env = "CONVENE_LOADGEN_NO_SIMULCAST")]
    pub no_simulcast: bool,
    /// Receiver constraint: video sources to receive at most (-1 = all).
    #[arg(long, env = "CONVENE_LOADGEN_LAST_N", allow_negative_numbers = true)]
    pub last_n: Option<i32>,
    /// Receiver constraint: maximum height of every received video.
    #[arg(long, env = "CONVENE_LOADGEN_MAX_HEIGHT")]
    pub max_height: Option<u32>,
    /// Local address for the participants' UDP sockets (their ICE host candidate).
    #[arg(long, env = "CONVENE_LOADGEN_BIND_IP", default_value = "127.0.0.1")]
    pub bind_ip: IpAddr,
    /// A participant without media for longer than this (while others publish) is dropped.
    #[arg(long, env = "CONVENE_LOADGEN_MAX_GAP_S", default_value_t = 10.0)]
    pub max_gap_s: f64,
    /// A participant with no media this long after someone else is in its room is dropped.
    #[arg(long, env = "CONVENE_LOADGEN_FIRST_MEDIA_TIMEOUT_S", default_value_t = 15.0)]
    pub first_media_timeout_s: f64,
    /// Write the JSON report here on exit (`-` = stdout).
    #[arg(long, env = "CONVENE_LOADGEN_REPORT")]
    pub report: Option<String>,
    /// Seconds between progress lines on stderr (0 = none).
    #[arg(long, env = "CONVENE_LOADGEN_PROGRESS_S", default_value_t = 5)]
    pub progress_s: u64,
    /// Churn: each participant leaves after about this many seconds (0.5–1.5×, varied per
    /// participant and session), waits `--rejoin-ms`, and joins again as a new session (a new
    /// line in the report); 0 = stay for the whole run.
    #[arg(long, env = "CONVENE_LOADGEN_CHURN_S", default_value_t = 0.0)]
    pub churn_s: f64,
    /// Pause between leaving and joining again under churn.
    #[arg(long, env = "CONVENE_LOADGEN_REJOIN_MS", default_value_t = 500)]
    pub rejoin_ms: u64,
    /// Runtime worker threads (all participants share them).
    #[arg(long, env = "CONVENE_LOADGEN_THREADS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

impl Config {
    pub fn publish(&self) -> PublishConfig {
        let mut p = PublishConfig::from_bitrate(self.video_kbps, self.fps);
        p.audio = !self.no_audio;
        p.video = !self.no_video;
        p.simulcast = !self.no_simulcast;
        p.keyframe_interval = Duration::from_secs(self.keyframe_interval_s.max(1));
        p
    }

    pub fn constraints(&self) -> Option<ReceiverConstraints> {
        if self.last_n.is_none() && self.max_height.is_none() {
            return None;
        }
        let mut c = ReceiverConstraints::default();
        if let Some(n) = self.last_n {
            c.last_n = n;
        }
        if let Some(h) = self.max_height {
            c.default_max_height = h;
        }
        Some(c)
    }

    pub fn drop_rules(&self) -> DropRules {
        let secs = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX);
        let video_expected = !self.no_video && self.last_n != Some(0) && self.max_height != Some(0);
        DropRules {
            max_gap: secs(self.max_gap_s),
            first_media_timeout: secs(self.first_media_timeout_s),
            expect_media: !self.no_audio || video_expected,
        }
    }

    pub fn room_of(&self, i: usize) -> String {
        format!("{}{}", self.room_prefix, i as u64 % self.rooms.max(1))
    }

    pub fn name_of(&self, i: usize) -> String {
        format!("{}{i}", self.name_prefix)
    }

    /// How long session `session` of participant `i` stays under churn (None: the whole run).
    /// Spread over 0.5–1.5× `churn_s` by a fixed mix of both numbers, so a run is repeatable.
    pub fn session_length(&self, i: usize, session: u32) -> Option<Duration> {
        if self.churn_s <= 0.0 {
            return None;
        }
        let mix = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (session as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let spread = 0.5 + (mix % 1000) as f64 / 1000.0;
        Some(Duration::from_secs_f64(self.churn_s * spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_sessions_vary_within_half_to_one_and_a_half_times() {
        let c = Config::parse_from(["convene-loadgen", "--churn-s", "10"]);
        let lengths: Vec<f64> = (0..50)
            .flat_map(|i| (0..4).map(move |s| (i, s)))
            .map(|(i, s)| c.session_length(i, s).unwrap().as_secs_f64())
            .collect();
        assert!(lengths.iter().all(|l| (5.0..=15.0).contains(l)), "{lengths:?}");
        let mean = lengths.iter().sum::<f64>() / lengths.len() as f64;
        assert!((8.0..12.0).contains(&mean), "mean {mean}");
        assert!(lengths.windows(2).any(|w| w[0] != w[1]), "varied");
        assert_eq!(Config::parse_from(["convene-loadgen"]).session_length(3, 0), None);
    }

    #[test]
    fn defaults_and_round_robin() {
        let c = Config::parse_from(["convene-loadgen", "--participants", "24", "--rooms", "6"]);
        assert_eq!(c.signaling_url, "ws://127.0.0.1:8080/ws");
        assert_eq!((c.video_kbps, c.fps, c.duration_s), (300, 15, 60));
        assert_eq!(c.room_of(0), "load-0");
        assert_eq!(c.room_of(7), "load-1");
        assert_eq!(c.name_of(7), "loadgen-7");
        assert!(c.constraints().is_none());
        let p = c.publish();
        assert!(p.audio && p.video && p.simulcast);
        assert!(c.drop_rules().expect_media);
    }

    #[test]
    fn toggles_and_constraints() {
        let c = Config::parse_from([
            "convene-loadgen",
            "--no-audio",
            "--last-n",
            "-1",
            "--max-height",
            "180",
            "--max-gap-s",
            "2.5",
        ]);
        assert!(!c.publish().audio);
        let k = c.constraints().unwrap();
        assert_eq!((k.last_n, k.default_max_height), (-1, 180));
        assert_eq!(c.drop_rules().max_gap, Duration::from_millis(2500));
        let quiet = Config::parse_from(["convene-loadgen", "--no-audio", "--last-n", "0"]);
        assert!(!quiet.drop_rules().expect_media);
        assert!(Config::try_parse_from(["convene-loadgen", "--rooms", "0"]).is_err());
    }
}
