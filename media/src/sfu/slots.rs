//! Receive slots: the `sendonly` m-lines of the bridge a receiver negotiates, and the rules
//! that decide which source each one carries (Jitsi's SSRC rewriting). Pure logic: no str0m,
//! no clock (time is passed in), so the rules are unit-tested here.
//!
//! - [`grown`]: how many slots of a kind a receiver has. They open in steps as it wants more
//!   sources (never close): each send stream costs str0m work per poll and the browser an
//!   m-line, so a receiver of one publisher has two video slots, not twenty, and renegotiates
//!   at most about log2(cap) times however big its meeting gets.
//! - [`assign`]: which wanted source goes on which slot. Sticky: a source keeps its slot while
//!   it is still wanted, so a change of the wanted set moves only the sources that changed.
//! - [`Audible`]: whose audio a conference forwards. At most `capacity` endpoints (each
//!   receiver's audio slots + 1, since nobody receives their own audio): the set fills with
//!   whoever sends audio while it has room; once full, an endpoint whose speech score beats
//!   the quietest member's by [`SWITCH_MARGIN`] (and is at least [`SPEAKING`]) takes that
//!   member's place, if that member has held it for [`HOLD`]. A receiver gets the members
//!   other than itself, in the set's order, up to its slot count: so a receiver outside a
//!   full set misses the last member. The newcomer goes first (it is the one talking now);
//!   [`Audible::reorder`] (every housekeeping pass) moves another member last when it has
//!   become quieter than the last one by the margin.
use std::time::{Duration, Instant};

/// Score (see `speaker.rs`) above which an endpoint counts as speaking: about 3 packets of
/// normal speech (-30 dBov), i.e. the first 60 ms.
pub const SPEAKING: f64 = 5.0;
/// A newcomer must be this much louder than the member it replaces.
pub const SWITCH_MARGIN: f64 = 1.25;
/// A member keeps its place at least this long (no flapping between two talkers).
pub const HOLD: Duration = Duration::from_secs(1);

/// Slots a receiver opens at least (of each kind, up to the cap): room for the first two
/// sources, so the smallest meetings need no second negotiation.
pub const MIN_SLOTS: usize = 2;

/// How many slots of one kind a receiver should have: `total` now, wanting `want` sources, at
/// most `cap`. More only when it wants more than it has: the next power of two above `want`
/// (one spare: a screen share often comes next), at least [`MIN_SLOTS`].
pub fn grown(total: usize, want: usize, cap: usize) -> usize {
    if want <= total || total >= cap {
        return total;
    }
    (want + 1).next_power_of_two().max(MIN_SLOTS).min(cap)
}

/// The new occupant of each slot: `held[i]` stays where it is if it is still wanted; the
/// other wanted sources fill the free slots in priority order. `wanted` is in priority order
/// and is cut to the number of slots first, so a low-priority holder yields its slot to a
/// higher-priority newcomer.
pub fn assign<K: PartialEq + Clone>(held: &[Option<K>], wanted: &[K]) -> Vec<Option<K>> {
    let wanted = &wanted[..wanted.len().min(held.len())];
    let mut out: Vec<Option<K>> =
        held.iter().map(|h| h.as_ref().filter(|k| wanted.contains(k)).cloned()).collect();
    let mut free = (0..out.len()).filter(|&i| out[i].is_none()).collect::<Vec<_>>().into_iter();
    for w in wanted {
        if out.iter().any(|o| o.as_ref() == Some(w)) {
            continue;
        }
        match free.next() {
            Some(i) => out[i] = Some(w.clone()),
            None => break,
        }
    }
    out
}

/// Whose audio a receiver's `slots` audio slots want, in priority order (only endpoints for
/// which `has_audio`): a hidden receiver (a recorder) wants every member, in join order, not
/// just the audible set, since a recording must hold everyone who spoke; anyone else gets
/// the audible set but itself ([`Audible::for_receiver`]).
pub fn audio_wanted<'a>(
    receiver: &'a str,
    hidden: bool,
    audible: &'a Audible,
    join_order: &'a [String],
    slots: usize,
    has_audio: impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    if hidden {
        join_order.iter().map(String::as_str).filter(|m| has_audio(m)).take(slots).collect()
    } else {
        audible.for_receiver(receiver, slots).filter(|m| has_audio(m)).collect()
    }
}

/// The endpoints whose audio a conference forwards (see the module doc for the rule).
#[derive(Debug, Clone, Default)]
pub struct Audible {
    /// Members, loudest first as of the last change, with the time each joined the set.
    members: Vec<(String, Instant)>,
}

impl Audible {
    /// Members, loudest first (as of the last change).
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|(m, _)| m.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.members.iter().any(|(m, _)| m == name)
    }

    /// `name` sent audio and now scores `score`. Returns true if the set changed.
    /// `score_of` gives the members' current scores.
    pub fn consider(
        &mut self,
        name: &str,
        score: f64,
        capacity: usize,
        now: Instant,
        score_of: impl Fn(&str) -> f64,
    ) -> bool {
        if capacity == 0 || self.contains(name) {
            return false;
        }
        if self.members.len() < capacity {
            self.members.push((name.to_string(), now));
            self.sort(&score_of);
            return true;
        }
        if score < SPEAKING {
            return false;
        }
        let quietest = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= HOLD)
            .map(|(i, (m, _))| (i, score_of(m)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match quietest {
            Some((i, q)) if score > q * SWITCH_MARGIN => {
                self.members.remove(i);
                self.members.insert(0, (name.to_string(), now));
                true
            }
            _ => false,
        }
    }

    /// Re-rank a full set when its last member (the one receivers outside the set do not
    /// hear) is no longer the quietest by the margin. Returns true if the order changed.
    pub fn reorder(&mut self, capacity: usize, score_of: impl Fn(&str) -> f64) -> bool {
        if self.members.len() < capacity || self.members.len() < 2 {
            return false;
        }
        let last = score_of(&self.members[self.members.len() - 1].0);
        let quietest = self.members.iter().map(|(m, _)| score_of(m)).fold(f64::INFINITY, f64::min);
        if last <= quietest * SWITCH_MARGIN || last < SPEAKING {
            return false;
        }
        self.sort(&score_of);
        true
    }

    /// An endpoint left. Returns true if it was a member.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.members.len();
        self.members.retain(|(m, _)| m != name);
        self.members.len() != before
    }

    /// Whose audio `receiver` gets: the members but itself, loudest first, at most `slots`.
    pub fn for_receiver<'a>(&'a self, receiver: &'a str, slots: usize) -> impl Iterator<Item = &'a str> {
        self.members().filter(move |m| *m != receiver).take(slots)
    }

    fn sort(&mut self, score_of: &impl Fn(&str) -> f64) {
        let mut scored: Vec<(f64, (String, Instant))> =
            self.members.drain(..).map(|m| (score_of(&m.0), m)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.members = scored.into_iter().map(|(_, m)| m).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_open_in_steps_up_to_the_cap_and_never_close() {
        assert_eq!(grown(0, 1, 20), 2, "a receiver's first slots: room for two");
        assert_eq!(grown(0, 0, 20), 0, "nothing wanted: nothing opened (the caller asks for one)");
        assert_eq!(grown(2, 2, 20), 2, "enough: no renegotiation");
        assert_eq!(grown(2, 3, 20), 4);
        assert_eq!(grown(4, 5, 20), 8);
        assert_eq!(grown(8, 12, 20), 16);
        assert_eq!(grown(16, 17, 20), 20, "capped");
        assert_eq!(grown(20, 40, 20), 20);
        assert_eq!(grown(8, 3, 20), 8, "fewer wanted: slots stay open");
        assert_eq!(grown(0, 1, 1), 1, "a cap under the minimum");
        assert_eq!(grown(0, 5, 0), 0, "no slots of this kind at all");
        // Growing one source at a time from 1 to the cap renegotiates a handful of times.
        let (mut total, mut steps) = (0, 0);
        for want in 1..=100 {
            let n = grown(total, want, 20);
            if n != total {
                steps += 1;
                total = n;
            }
        }
        assert_eq!((total, steps), (20, 5));
    }
    use std::collections::HashMap;

    #[test]
    fn assignment_is_sticky_and_by_priority() {
        // Free slots fill in priority order.
        assert_eq!(assign::<&str>(&[None, None, None], &["a", "b"]), vec![Some("a"), Some("b"), None]);
        // A source that stays wanted keeps its slot; the newcomer takes the freed one.
        assert_eq!(
            assign(&[Some("a"), Some("b"), Some("c")], &["c", "d", "a"]),
            vec![Some("a"), Some("d"), Some("c")]
        );
        // More wanted than slots: the lowest priority is left out, even if it held a slot.
        assert_eq!(assign(&[Some("c"), None], &["a", "b", "c"]), vec![Some("a"), Some("b")]);
        // Nothing wanted: every slot is freed.
        assert_eq!(assign::<&str>(&[Some("a"), None], &[]), vec![None, None]);
        // No slots.
        assert_eq!(assign::<&str>(&[], &["a"]), Vec::<Option<&str>>::new());
    }

    #[test]
    fn hidden_receivers_want_every_audio_source() {
        let t0 = Instant::now();
        let joined: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let mut set = Audible::default();
        // Only "c" is audible (a full set of one): a participant hears just c...
        assert!(set.consider("c", 9.0, 1, t0, |_| 9.0));
        let has_audio = |m: &str| m != "b";
        assert_eq!(audio_wanted("a", false, &set, &joined, 5, has_audio), vec!["c"]);
        // ...a recorder gets everyone with audio, in join order, whoever is loud.
        assert_eq!(audio_wanted("rec", true, &set, &joined, 5, has_audio), vec!["a", "c", "d"]);
        // Bounded by its slots (the bridge's recorder slot count).
        assert_eq!(audio_wanted("rec", true, &set, &joined, 2, has_audio), vec!["a", "c"]);
        assert!(audio_wanted("rec", true, &set, &[], 5, has_audio).is_empty());
    }

    #[test]
    fn audible_fills_then_needs_a_louder_speaker() {
        let t0 = Instant::now();
        let mut scores: HashMap<&str, f64> = HashMap::from([("a", 1.0), ("b", 0.0), ("c", 20.0)]);
        let mut set = Audible::default();
        // While there is room, whoever sends audio is in (silence too: small rooms hear all).
        assert!(set.consider("a", 1.0, 2, t0, |m| scores[m]));
        assert!(set.consider("b", 0.0, 2, t0, |m| scores[m]));
        assert!(!set.consider("a", 1.0, 2, t0, |m| scores[m]), "already in");
        assert_eq!(set.members().collect::<Vec<_>>(), vec!["a", "b"]);
        // Full: a speaker louder than the quietest member waits for that member's hold time.
        assert!(!set.consider("c", 20.0, 2, t0 + Duration::from_millis(500), |m| scores[m]));
        let t1 = t0 + HOLD;
        assert!(set.consider("c", 20.0, 2, t1, |m| scores[m]));
        assert_eq!(set.members().collect::<Vec<_>>(), vec!["c", "a"], "newcomer first; b replaced");
        // Not speaking, or not louder by the margin: no change.
        scores.insert("d", 4.0);
        assert!(!set.consider("d", 4.0, 2, t1 + HOLD, |m| scores[m]));
        scores.insert("a", 10.0);
        assert!(!set.consider("d", 12.0, 2, t1 + HOLD, |m| scores[m]), "12 < 10 * 1.25");
        assert!(set.consider("d", 13.0, 2, t1 + HOLD, |m| scores[m]));
        assert_eq!(set.members().collect::<Vec<_>>(), vec!["d", "c"]);
        // c (20) is last but louder than d (13 → now 15): only by the margin does it move up.
        scores.insert("d", 17.0);
        assert!(!set.reorder(2, |m| scores[m]), "20 <= 17 * 1.25");
        scores.insert("d", 15.0);
        assert!(set.reorder(2, |m| scores[m]));
        assert_eq!(set.members().collect::<Vec<_>>(), vec!["c", "d"]);
        // Receivers: everyone but themselves, loudest first, up to their slots.
        assert_eq!(set.for_receiver("c", 5).collect::<Vec<_>>(), vec!["d"]);
        assert_eq!(set.for_receiver("x", 1).collect::<Vec<_>>(), vec!["c"]);
        assert!(set.remove("c"));
        assert!(!set.remove("c"));
        assert_eq!(set.members().collect::<Vec<_>>(), vec!["d"]);
        assert!(!Audible::default().consider("a", 9.0, 0, t0, |_| 0.0), "no audio slots at all");
    }
}
