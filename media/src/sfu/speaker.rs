//! Dominant speaker detection from the RTP audio-level header extension (RFC 6464).
//!
//! Levels are -dBov (0 loudest, 127 silence). Each endpoint keeps a decaying energy score;
//! the dominant speaker changes only when another endpoint beats the current one by a margin
//! (hysteresis, so two people talking at once do not flap the video).
//!
//! O(1) per sample: every score decays at the same rate, so two endpoints' order changes only
//! when one of them gets a sample; only the endpoint just heard can overtake the current one.
use std::collections::HashMap;
use std::time::Instant;

const DECAY_PER_S: f64 = 2.0; // e-folding rate of the score
const MIN_SCORE: f64 = 5.0; // below this nobody is speaking
const SWITCH_MARGIN: f64 = 1.25; // challenger must be 25% louder

#[derive(Debug, Clone)]
struct Score {
    value: f64,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct DominantSpeaker {
    scores: HashMap<String, Score>,
    current: Option<String>,
    /// Most recent dominant speakers first (Jitsi's "speech activity" order for last-N).
    history: Vec<String>,
}

fn decayed(s: &Score, now: Instant) -> f64 {
    let dt = now.saturating_duration_since(s.at).as_secs_f64();
    s.value * (-DECAY_PER_S * dt).exp()
}

impl DominantSpeaker {
    /// Feed one audio level sample; returns the new dominant speaker if it changed.
    pub fn observe(&mut self, endpoint: &str, level: i8, now: Instant) -> Option<String> {
        // Loudness above silence, scaled so normal speech (-30..-20 dBov) counts ~1 per packet.
        // str0m reports -dBov as a negative number (0 loudest, -127 silence); accept both signs.
        let db = f64::from(level.unsigned_abs().min(127));
        let loudness = (127.0 - db) / 100.0;
        let loud = (loudness * loudness * 2.0).max(0.0);
        let score = match self.scores.get_mut(endpoint) {
            Some(s) => {
                s.value = decayed(s, now) + loud;
                s.at = now;
                s.value
            }
            None => {
                self.scores.insert(endpoint.to_string(), Score { value: loud, at: now });
                loud
            }
        };
        self.decide(endpoint, score, now)
    }

    /// Does `endpoint`, just heard with `score`, take over from the current speaker?
    fn decide(&mut self, endpoint: &str, score: f64, now: Instant) -> Option<String> {
        if score < MIN_SCORE || self.current.as_deref() == Some(endpoint) {
            return None;
        }
        let current_score = self.current.as_ref().map(|c| self.score(c, now)).unwrap_or(0.0);
        if score < current_score * SWITCH_MARGIN {
            return None;
        }
        let best = endpoint.to_string();
        self.current = Some(best.clone());
        self.history.retain(|e| *e != best);
        self.history.insert(0, best.clone());
        Some(best)
    }

    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Endpoints in speech-activity order (most recently dominant first).
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Current audio score of an endpoint (for "loudest N" audio forwarding).
    pub fn score(&self, endpoint: &str, now: Instant) -> f64 {
        self.scores.get(endpoint).map(|s| decayed(s, now)).unwrap_or(0.0)
    }

    pub fn remove(&mut self, endpoint: &str) {
        self.scores.remove(endpoint);
        self.history.retain(|e| e != endpoint);
        if self.current.as_deref() == Some(endpoint) {
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loud_speaker_wins_and_hysteresis_holds() {
        let mut d = DominantSpeaker::default();
        let t0 = Instant::now();
        let mut changed = Vec::new();
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(20 * i);
            changed.extend(d.observe("alice", 20, now));
            changed.extend(d.observe("bob", 120, now));
        }
        assert_eq!(changed, vec!["alice".to_string()]);
        // Bob becomes about as loud: no flapping.
        for i in 100..150u64 {
            let now = t0 + Duration::from_millis(20 * i);
            assert_eq!(d.observe("alice", 20, now), None);
            assert_eq!(d.observe("bob", 19, now), None);
        }
        // Alice stops talking: Bob takes over.
        let mut got = None;
        for i in 150..300u64 {
            let now = t0 + Duration::from_millis(20 * i);
            got = got.or(d.observe("alice", 127, now));
            got = got.or(d.observe("bob", 20, now));
        }
        assert_eq!(got.as_deref(), Some("bob"));
        assert_eq!(d.history(), &["bob".to_string(), "alice".to_string()]);
    }

    #[test]
    fn silence_elects_nobody() {
        let mut d = DominantSpeaker::default();
        let t0 = Instant::now();
        for i in 0..50u64 {
            assert_eq!(d.observe("a", 127, t0 + Duration::from_millis(20 * i)), None);
        }
        assert_eq!(d.current(), None);
    }
}
