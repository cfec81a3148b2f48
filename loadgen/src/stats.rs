//! What one simulated participant saw, and the rules that make it "dropped".
use std::collections::HashSet;
use std::time::{Duration, Instant};

use convene_proto::media::SourceKind;

/// The longest time without any media, counted only while someone else is in the room and
/// only once media has arrived (the clock restarts when others come back). Migrations do not
/// stop the clock: a gap spanning one counts in full.
#[derive(Debug, Default, Clone)]
pub struct GapClock {
    last: Option<Instant>,
    longest: Duration,
}

impl GapClock {
    pub fn media(&mut self, now: Instant) {
        self.close(now);
        self.last = Some(now);
    }

    /// Nobody else is left (or we stop): close the running interval.
    pub fn pause(&mut self, now: Instant) {
        self.close(now);
        self.last = None;
    }

    fn close(&mut self, now: Instant) {
        if let Some(l) = self.last {
            self.longest = self.longest.max(now.saturating_duration_since(l));
        }
    }

    /// Time since the last media while the clock runs.
    pub fn current(&self, now: Instant) -> Duration {
        self.last.map(|l| now.saturating_duration_since(l)).unwrap_or_default()
    }

    /// Longest gap so far, including the one in progress.
    pub fn longest(&self, now: Instant) -> Duration {
        self.longest.max(self.current(now))
    }
}

/// Media received from one remote source (`<endpoint>-a0`, `-v0`, `-s0`), across bridges.
#[derive(Debug, Clone)]
pub struct SourceStats {
    pub name: String,
    pub kind: SourceKind,
    pub frames: u64,
    pub bytes: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub longest_gap: Duration,
}

#[derive(Debug, Clone)]
pub struct Stats {
    pub name: String,
    pub room: String,
    /// Participant id given by signaling.
    pub id: Option<String>,
    /// When its task started (its turn in the ramp).
    pub started: Instant,
    pub joined: Option<Instant>,
    /// Bridge ids from `media.bridge`, in the order seen.
    pub bridges: Vec<String>,
    pub migrations: u32,
    pub audio_frames: u64,
    pub audio_bytes: u64,
    pub video_frames: u64,
    pub video_bytes: u64,
    pub sources: Vec<SourceStats>,
    /// Other participants in the room (ids).
    pub others: HashSet<String>,
    /// When media was first expected: joined with someone else in the room.
    pub expected_since: Option<Instant>,
    pub first_media: Option<Instant>,
    pub last_media: Option<Instant>,
    pub gap: GapClock,
    pub connected_since: Option<Instant>,
    pub connected_total: Duration,
    pub malformed_frames: u64,
    /// Non-fatal problems (typed errors from signaling, SDP trouble), counted.
    pub errors: u64,
    pub last_error: Option<String>,
    /// Why this participant cannot go on (join refused, socket closed, kicked …).
    pub fatal: Option<String>,
    pub finished: Option<Instant>,
}

impl Stats {
    pub fn new(name: String, room: String, now: Instant) -> Stats {
        Stats {
            name,
            room,
            id: None,
            started: now,
            joined: None,
            bridges: Vec::new(),
            migrations: 0,
            audio_frames: 0,
            audio_bytes: 0,
            video_frames: 0,
            video_bytes: 0,
            sources: Vec::new(),
            others: HashSet::new(),
            expected_since: None,
            first_media: None,
            last_media: None,
            gap: GapClock::default(),
            connected_since: None,
            connected_total: Duration::ZERO,
            malformed_frames: 0,
            errors: 0,
            last_error: None,
            fatal: None,
            finished: None,
        }
    }

    /// Index of the source named `name`, created on first sight.
    pub fn source_index(&mut self, name: &str, kind: SourceKind) -> usize {
        if let Some(i) = self.sources.iter().position(|s| s.name == name) {
            return i;
        }
        self.sources.push(SourceStats {
            name: name.to_string(),
            kind,
            frames: 0,
            bytes: 0,
            first: None,
            last: None,
            longest_gap: Duration::ZERO,
        });
        self.sources.len() - 1
    }

    pub fn on_media(&mut self, now: Instant, source: Option<usize>, video: bool, bytes: usize) {
        if video {
            self.video_frames += 1;
            self.video_bytes += bytes as u64;
        } else {
            self.audio_frames += 1;
            self.audio_bytes += bytes as u64;
        }
        if let Some(s) = source.and_then(|i| self.sources.get_mut(i)) {
            s.frames += 1;
            s.bytes += bytes as u64;
            if let Some(l) = s.last {
                s.longest_gap = s.longest_gap.max(now.saturating_duration_since(l));
            }
            s.first.get_or_insert(now);
            s.last = Some(now);
        }
        self.first_media.get_or_insert(now);
        self.last_media = Some(now);
        if !self.others.is_empty() {
            self.gap.media(now);
        }
    }

    pub fn set_others(&mut self, now: Instant, others: impl IntoIterator<Item = String>) {
        self.others = others.into_iter().collect();
        self.others_changed(now);
    }

    pub fn other_joined(&mut self, now: Instant, id: String) {
        if Some(&id) != self.id.as_ref() {
            self.others.insert(id);
        }
        self.others_changed(now);
    }

    pub fn other_left(&mut self, now: Instant, id: &str) {
        self.others.remove(id);
        self.others_changed(now);
    }

    fn others_changed(&mut self, now: Instant) {
        if self.others.is_empty() {
            self.gap.pause(now);
        } else if self.joined.is_some() {
            self.expected_since.get_or_insert(now);
        }
    }

    pub fn connected(&mut self, now: Instant, up: bool) {
        match (up, self.connected_since) {
            (true, None) => self.connected_since = Some(now),
            (false, Some(t)) => {
                self.connected_total += now.saturating_duration_since(t);
                self.connected_since = None;
            }
            _ => {}
        }
    }

    pub fn connected_time(&self, now: Instant) -> Duration {
        self.connected_total
            + self.connected_since.map(|t| now.saturating_duration_since(t)).unwrap_or_default()
    }

    pub fn error(&mut self, what: String) {
        self.errors += 1;
        self.last_error = Some(what);
    }

    pub fn fail(&mut self, why: String) {
        self.fatal.get_or_insert(why);
    }

    /// Stop the clocks (leaving, or the task ended).
    pub fn finish(&mut self, now: Instant) {
        if self.finished.is_none() {
            self.connected(now, false);
            self.gap.pause(now);
            self.finished = Some(now);
        }
    }

    /// The time at which figures are read: the end of the run or now.
    pub fn end(&self, now: Instant) -> Instant {
        self.finished.unwrap_or(now)
    }

    pub fn longest_gap(&self, now: Instant) -> Duration {
        self.gap.longest(self.end(now))
    }

    /// Time from media being expected to the first frame.
    pub fn first_media_after(&self) -> Option<Duration> {
        Some(self.first_media?.saturating_duration_since(self.expected_since?))
    }

    /// Why this participant counts as dropped, if it does.
    pub fn dropped_reason(&self, rules: &DropRules, now: Instant) -> Option<String> {
        if let Some(f) = &self.fatal {
            return Some(f.clone());
        }
        let end = self.end(now);
        if rules.expect_media
            && self.first_media.is_none()
            && let Some(t) = self.expected_since
            && end.saturating_duration_since(t) > rules.first_media_timeout
        {
            return Some(format!("no media within {:?}", rules.first_media_timeout));
        }
        let gap = self.longest_gap(now);
        (gap > rules.max_gap).then(|| format!("media gap of {} ms", gap.as_millis()))
    }

    /// Received media within `window` before `now`.
    pub fn receiving(&self, now: Instant, window: Duration) -> bool {
        self.finished.is_none() && self.last_media.is_some_and(|l| now.saturating_duration_since(l) <= window)
    }
}

/// When a participant counts as dropped (besides a fatal error).
#[derive(Debug, Clone)]
pub struct DropRules {
    pub max_gap: Duration,
    pub first_media_timeout: Duration,
    /// False when nobody publishes anything this participant would receive.
    pub expect_media: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rules() -> DropRules {
        DropRules { max_gap: ms(1000), first_media_timeout: ms(5000), expect_media: true }
    }

    #[test]
    fn gap_counts_only_with_company_and_after_first_media() {
        let t = Instant::now();
        let mut s = Stats::new("p".into(), "r".into(), t);
        s.joined = Some(t);
        s.set_others(t, ["b".to_string()]);
        // Waiting for first media is not a gap (it has its own timeout).
        s.on_media(t + ms(3000), None, false, 10);
        s.on_media(t + ms(3020), None, false, 10);
        assert_eq!(s.longest_gap(t + ms(3020)), ms(20));
        // A silence in progress counts before it ends…
        assert_eq!(s.longest_gap(t + ms(3520)), ms(500));
        // …until the last other participant leaves: then nothing is expected.
        s.other_left(t + ms(3600), "b");
        assert_eq!(s.longest_gap(t + ms(9000)), ms(580));
        // Back in company: the clock restarts at the next media, not at the join.
        s.other_joined(t + ms(9000), "c".into());
        s.on_media(t + ms(9900), None, true, 100);
        s.on_media(t + ms(12_100), None, true, 100);
        assert_eq!(s.longest_gap(t + ms(12_100)), ms(2200));
        assert_eq!(s.dropped_reason(&rules(), t + ms(12_100)).unwrap(), "media gap of 2200 ms");
        assert_eq!(s.first_media_after(), Some(ms(3000)));
        assert_eq!((s.audio_frames, s.video_frames, s.video_bytes), (2, 2, 200));
    }

    #[test]
    fn no_first_media_is_dropped_after_the_timeout_only() {
        let t = Instant::now();
        let mut s = Stats::new("p".into(), "r".into(), t);
        s.joined = Some(t);
        // Alone: nothing expected, however long.
        assert!(s.dropped_reason(&rules(), t + ms(60_000)).is_none());
        s.other_joined(t + ms(60_000), "b".into());
        assert!(s.dropped_reason(&rules(), t + ms(64_000)).is_none());
        assert!(s.dropped_reason(&rules(), t + ms(65_001)).unwrap().starts_with("no media"));
        let quiet = DropRules { expect_media: false, ..rules() };
        assert!(s.dropped_reason(&quiet, t + ms(65_001)).is_none());
    }

    #[test]
    fn fatal_wins_and_clocks_stop_at_finish() {
        let t = Instant::now();
        let mut s = Stats::new("p".into(), "r".into(), t);
        s.joined = Some(t);
        s.other_joined(t, "b".into());
        s.connected(t, true);
        s.on_media(t + ms(10), None, false, 1);
        s.finish(t + ms(500));
        assert_eq!(s.longest_gap(t + ms(90_000)), ms(490));
        assert_eq!(s.connected_time(t + ms(90_000)), ms(500));
        assert!(s.dropped_reason(&rules(), t + ms(90_000)).is_none());
        s.fail("signaling closed".into());
        s.fail("later".into());
        assert_eq!(s.dropped_reason(&rules(), t).as_deref(), Some("signaling closed"));
    }

    #[test]
    fn per_source_figures() {
        let t = Instant::now();
        let mut s = Stats::new("p".into(), "r".into(), t);
        let a = s.source_index("b-a0", SourceKind::Audio);
        let v = s.source_index("b-v0", SourceKind::Camera);
        assert_eq!(s.source_index("b-a0", SourceKind::Audio), a);
        s.on_media(t, Some(v), true, 500);
        s.on_media(t + ms(70), Some(v), true, 500);
        s.on_media(t + ms(80), Some(a), false, 80);
        s.on_media(t + ms(90), Some(99), false, 80);
        assert_eq!((s.sources[v].frames, s.sources[v].bytes, s.sources[v].longest_gap), (2, 1000, ms(70)));
        assert_eq!(s.sources[a].frames, 1);
        assert_eq!(s.audio_frames, 2);
    }
}
