//! A conference: its endpoints in join order, its hidden endpoints (recorders: receivers only,
//! kept apart so last-N, speakers and the audible set never see them), its speaker state,
//! whose audio it forwards, and which receivers could take more video than they get.
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::EpId;
use super::slots::Audible;
use super::speaker::DominantSpeaker;

#[derive(Debug)]
pub struct Conference {
    pub name: String,
    /// Endpoint ids in join order.
    pub members: Vec<EpId>,
    /// Endpoint names in join order (last-N tie-break).
    pub member_names: Vec<String>,
    /// Endpoint name → id.
    pub by_name: HashMap<String, EpId>,
    /// Hidden endpoints (recorders), in join order; not in `members` nor `by_name`.
    pub hidden: Vec<EpId>,
    pub speaker: DominantSpeaker,
    /// Endpoints whose audio is forwarded (to everyone else, on their audio slots).
    pub audible: Audible,
    /// Receivers with a free video slot that no candidate could fill (everyone with video is
    /// already theirs): a new video source is offered to these, not to the whole conference.
    pub hungry: HashSet<EpId>,
    pub created: Instant,
}

impl Conference {
    pub fn new(name: &str, now: Instant) -> Self {
        Conference {
            name: name.to_string(),
            members: Vec::new(),
            member_names: Vec::new(),
            by_name: HashMap::new(),
            hidden: Vec::new(),
            speaker: DominantSpeaker::default(),
            audible: Audible::default(),
            hungry: HashSet::new(),
            created: now,
        }
    }

    pub fn add(&mut self, id: EpId, name: &str) {
        self.members.push(id);
        self.member_names.push(name.to_string());
        self.by_name.insert(name.to_string(), id);
    }

    pub fn add_hidden(&mut self, id: EpId) {
        self.hidden.push(id);
    }

    /// Everyone who receives: members, then hidden endpoints.
    pub fn receivers(&self) -> Vec<EpId> {
        self.members.iter().chain(&self.hidden).copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.hidden.is_empty()
    }

    /// Remove a member (or a hidden endpoint); returns true if it was audible (its listeners
    /// need new audio).
    pub fn remove(&mut self, id: EpId, name: &str) -> bool {
        if let Some(i) = self.hidden.iter().position(|h| *h == id) {
            self.hidden.remove(i);
            self.hungry.remove(&id);
            return false;
        }
        self.members.retain(|m| *m != id);
        self.member_names.retain(|m| m != name);
        self.by_name.remove(name);
        self.hungry.remove(&id);
        self.speaker.remove(name);
        self.audible.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_audible() {
        let t0 = Instant::now();
        let mut c = Conference::new("c", t0);
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            c.add(i as EpId, n);
        }
        c.audible.consider("b", 0.0, 3, t0, |_| 0.0);
        c.hungry.insert(1);
        assert!(c.remove(1, "b"), "b was audible");
        assert!(!c.remove(0, "a"));
        assert_eq!(c.member_names, vec!["c"]);
        assert_eq!(c.by_name.get("c"), Some(&2));
        assert!(c.hungry.is_empty());
    }

    #[test]
    fn hidden_endpoints_receive_but_are_not_members() {
        let t0 = Instant::now();
        let mut c = Conference::new("c", t0);
        c.add(1, "a");
        c.add_hidden(2);
        assert_eq!(c.members, vec![1]);
        assert!(!c.by_name.contains_key("rec"), "not found as a source by name");
        assert_eq!(c.receivers(), vec![1, 2]);
        // A member with the hidden endpoint's name is another endpoint: only ids count.
        c.add(3, "rec");
        assert!(!c.remove(2, "rec"));
        assert_eq!(c.by_name.get("rec"), Some(&3));
        assert_eq!(c.receivers(), vec![1, 3]);
        c.remove(1, "a");
        c.remove(3, "rec");
        assert!(c.is_empty());
    }
}
