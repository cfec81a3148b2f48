//! The JSON report written on exit and the one-line progress log. The report's top-level keys
//! and the `per_participant` keys listed in `media/NOTES.md` are parsed by other tests: keep
//! them stable (adding keys is fine).
use std::time::{Duration, Instant};

use serde::Serialize;

use super::stats::{DropRules, Stats};
use convene_proto::media::SourceKind;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub participants: usize,
    pub rooms: usize,
    pub duration_s: f64,
    pub dropped: u32,
    /// Longest gap of any participant.
    pub longest_gap_ms: u64,
    pub migrations: u32,
    /// Participants that received any media.
    pub received_media: usize,
    /// Slowest time from media being expected to the first frame.
    pub first_media_ms_max: Option<u64>,
    pub frames_received: u64,
    pub bytes_received: u64,
    pub malformed_frames: u64,
    /// CPU time (user + system) of this process over the run, from /proc.
    pub cpu_s: Option<f64>,
    pub per_participant: Vec<ParticipantReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantReport {
    pub name: String,
    pub room: String,
    pub id: Option<String>,
    /// Joined its room (false: refused, or the run ended before its turn in the ramp).
    pub joined: bool,
    pub bridges: Vec<String>,
    pub migrations: u32,
    pub frames_received: u64,
    pub bytes_received: u64,
    pub audio_frames: u64,
    pub audio_bytes: u64,
    pub video_frames: u64,
    pub video_bytes: u64,
    pub longest_gap_ms: u64,
    /// From media being expected (joined with someone else in the room) to the first frame.
    pub first_media_ms: Option<u64>,
    /// Time with a connected peer connection, summed over bridges.
    pub connected_ms: u64,
    pub malformed_frames: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub dropped: bool,
    pub reason: Option<String>,
    pub sources: Vec<SourceReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub name: String,
    pub kind: SourceKind,
    pub frames: u64,
    pub bytes: u64,
    pub longest_gap_ms: u64,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl ParticipantReport {
    pub fn new(s: &Stats, rules: &DropRules, now: Instant) -> ParticipantReport {
        let reason = s.dropped_reason(rules, now);
        ParticipantReport {
            name: s.name.clone(),
            room: s.room.clone(),
            id: s.id.clone(),
            joined: s.joined.is_some(),
            bridges: s.bridges.clone(),
            migrations: s.migrations,
            frames_received: s.audio_frames + s.video_frames,
            bytes_received: s.audio_bytes + s.video_bytes,
            audio_frames: s.audio_frames,
            audio_bytes: s.audio_bytes,
            video_frames: s.video_frames,
            video_bytes: s.video_bytes,
            longest_gap_ms: ms(s.longest_gap(now)),
            first_media_ms: s.first_media_after().map(ms),
            connected_ms: ms(s.connected_time(s.end(now))),
            malformed_frames: s.malformed_frames,
            errors: s.errors,
            last_error: s.last_error.clone(),
            dropped: reason.is_some(),
            reason,
            sources: s
                .sources
                .iter()
                .map(|x| SourceReport {
                    name: x.name.clone(),
                    kind: x.kind,
                    frames: x.frames,
                    bytes: x.bytes,
                    longest_gap_ms: ms(x.longest_gap),
                })
                .collect(),
        }
    }
}

impl Report {
    pub fn new(
        rooms: usize,
        duration: Duration,
        per_participant: Vec<ParticipantReport>,
        cpu_s: Option<f64>,
    ) -> Report {
        let p = &per_participant;
        Report {
            participants: p.len(),
            rooms,
            duration_s: duration.as_secs_f64(),
            dropped: p.iter().filter(|x| x.dropped).count() as u32,
            longest_gap_ms: p.iter().map(|x| x.longest_gap_ms).max().unwrap_or(0),
            migrations: p.iter().map(|x| x.migrations).sum(),
            received_media: p.iter().filter(|x| x.frames_received > 0).count(),
            first_media_ms_max: p.iter().filter_map(|x| x.first_media_ms).max(),
            frames_received: p.iter().map(|x| x.frames_received).sum(),
            bytes_received: p.iter().map(|x| x.bytes_received).sum(),
            malformed_frames: p.iter().map(|x| x.malformed_frames).sum(),
            cpu_s,
            per_participant,
        }
    }

    pub fn to_json(&self) -> String {
        // Strings, integers and finite floats only.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// One progress line: joined, connected, receiving, migrations, dropped, gaps.
pub fn progress_line(
    elapsed: Duration,
    total: usize,
    stats: &[Stats],
    rules: &DropRules,
    now: Instant,
) -> String {
    let joined = stats.iter().filter(|s| s.joined.is_some() && s.finished.is_none()).count();
    let connected = stats.iter().filter(|s| s.connected_since.is_some()).count();
    let receiving = stats.iter().filter(|s| s.receiving(now, Duration::from_secs(2))).count();
    let migrations: u32 = stats.iter().map(|s| s.migrations).sum();
    let dropped = stats.iter().filter(|s| s.dropped_reason(rules, now).is_some()).count();
    let worst = stats.iter().max_by_key(|s| s.longest_gap(now));
    let longest = worst.map(|s| s.longest_gap(now)).unwrap_or_default();
    let current = stats.iter().map(|s| s.gap.current(s.end(now))).max().unwrap_or_default();
    format!(
        "loadgen t={:.0}s joined={joined}/{total} connected={connected} receiving={receiving} migrations={migrations} \
         dropped={dropped} longest_gap={:.2}s{} current_gap={:.2}s",
        elapsed.as_secs_f64(),
        longest.as_secs_f64(),
        worst.filter(|_| !longest.is_zero()).map(|s| format!(" ({})", s.name)).unwrap_or_default(),
        current.as_secs_f64(),
    )
}

/// CPU seconds (user + system) this process used so far, from `/proc/self/stat`.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux ABI Rust targets.
    Some(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_aggregates_and_keeps_its_keys() {
        let t = Instant::now();
        let rules = DropRules {
            max_gap: Duration::from_secs(10),
            first_media_timeout: Duration::from_secs(15),
            expect_media: true,
        };
        let mut a = Stats::new("lg-0".into(), "load-0".into(), t);
        a.joined = Some(t);
        a.other_joined(t, "x".into());
        a.bridges.push("b1".into());
        a.migrations = 1;
        a.on_media(t + Duration::from_millis(100), None, true, 1000);
        a.on_media(t + Duration::from_millis(3100), None, false, 80);
        a.finish(t + Duration::from_millis(3200));
        let mut b = Stats::new("lg-1".into(), "load-0".into(), t);
        b.fail("signaling connection closed".into());
        let per = vec![ParticipantReport::new(&a, &rules, t), ParticipantReport::new(&b, &rules, t)];
        let r = Report::new(1, Duration::from_secs(20), per, Some(1.5));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["participants"], 2);
        assert_eq!(v["rooms"], 1);
        assert_eq!(v["duration_s"], 20.0);
        assert_eq!(v["dropped"], 1);
        assert_eq!(v["longest_gap_ms"], 3000);
        assert_eq!(v["migrations"], 1);
        let p0 = &v["per_participant"][0];
        for k in [
            "name",
            "room",
            "bridges",
            "migrations",
            "frames_received",
            "bytes_received",
            "longest_gap_ms",
            "first_media_ms",
            "dropped",
            "reason",
        ] {
            assert!(p0.get(k).is_some(), "missing {k}");
        }
        assert_eq!(p0["bridges"][0], "b1");
        assert_eq!(p0["frames_received"], 2);
        assert_eq!(p0["bytes_received"], 1080);
        assert_eq!(p0["first_media_ms"], 100);
        assert_eq!(p0["dropped"], false);
        assert_eq!(p0["joined"], true);
        assert!(p0["reason"].is_null());
        assert_eq!(v["per_participant"][1]["reason"], "signaling connection closed");
        assert!(v["per_participant"][1]["first_media_ms"].is_null());
    }

    #[test]
    fn progress_line_names_the_worst_gap() {
        let t = Instant::now();
        let rules = DropRules {
            max_gap: Duration::from_secs(1),
            first_media_timeout: Duration::from_secs(15),
            expect_media: true,
        };
        let mut a = Stats::new("lg-0".into(), "load-0".into(), t);
        a.joined = Some(t);
        a.other_joined(t, "x".into());
        a.on_media(t, None, false, 1);
        let line = progress_line(Duration::from_secs(3), 2, &[a], &rules, t + Duration::from_millis(1500));
        assert!(line.contains("joined=1/2"), "{line}");
        assert!(line.contains("receiving=1"), "{line}");
        assert!(line.contains("dropped=1"), "{line}");
        assert!(line.contains("longest_gap=1.50s (lg-0)"), "{line}");
    }

    #[test]
    fn cpu_seconds_readable_on_linux() {
        assert!(process_cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
