//! A conference: its endpoints in join order and its speaker state.
use std::time::Instant;

use super::EpId;
use super::speaker::DominantSpeaker;

#[derive(Debug)]
pub struct Conference {
    pub name: String,
    /// Endpoint ids in join order.
    pub members: Vec<EpId>,
    /// Endpoint names in join order (last-N tie-break).
    pub member_names: Vec<String>,
    pub speaker: DominantSpeaker,
    /// Endpoints whose audio is forwarded when the room is too large to forward all of it.
    pub loudest: Vec<String>,
    pub created: Instant,
}

impl Conference {
    pub fn new(name: &str, now: Instant) -> Self {
        Conference {
            name: name.to_string(),
            members: Vec::new(),
            member_names: Vec::new(),
            speaker: DominantSpeaker::default(),
            loudest: Vec::new(),
            created: now,
        }
    }

    pub fn add(&mut self, id: EpId, name: &str) {
        self.members.push(id);
        self.member_names.push(name.to_string());
    }

    pub fn remove(&mut self, id: EpId, name: &str) {
        self.members.retain(|m| *m != id);
        self.member_names.retain(|m| m != name);
        self.speaker.remove(name);
        self.loudest.retain(|m| m != name);
    }

    /// Recompute the loudest `n` speakers (used when the room exceeds the audio threshold).
    pub fn update_loudest(&mut self, n: usize, now: Instant) {
        let mut scored: Vec<(f64, &String)> =
            self.member_names.iter().map(|m| (self.speaker.score(m, now), m)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.loudest = scored.into_iter().take(n).map(|(_, m)| m.clone()).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loudest_few() {
        let t0 = Instant::now();
        let mut c = Conference::new("c", t0);
        for (i, n) in ["a", "b", "c", "d"].iter().enumerate() {
            c.add(i as EpId, n);
        }
        for k in 0..50u64 {
            let now = t0 + Duration::from_millis(20 * k);
            c.speaker.observe("a", -60, now);
            c.speaker.observe("b", -10, now);
            c.speaker.observe("c", -127, now);
            c.speaker.observe("d", -30, now);
        }
        c.update_loudest(2, t0 + Duration::from_secs(1));
        assert_eq!(c.loudest, vec!["b".to_string(), "d".to_string()]);
        c.remove(1, "b");
        assert_eq!(c.loudest, vec!["d".to_string()]);
        assert_eq!(c.member_names, vec!["a", "c", "d"]);
    }
}
