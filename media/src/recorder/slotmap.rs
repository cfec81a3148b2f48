//! Which source each receive slot carries, as the bridge said (its offer's `slots`, then
//! `slots` updates with only the slots that changed), and which sources appeared or left
//! with each update. Pure: keyed by the slot's `mid` string.
use std::collections::BTreeMap;

use crate::control::{SlotInfo, SlotSource};

#[derive(Debug, Default)]
pub struct SlotMap {
    by_mid: BTreeMap<String, SlotSource>,
}

/// What an update changed, by source name.
#[derive(Debug, Default, PartialEq)]
pub struct SlotChange {
    /// Sources now on a slot that were on none before.
    pub appeared: Vec<SlotSource>,
    /// Sources on no slot any more.
    pub left: Vec<String>,
}

impl SlotMap {
    /// Apply the bridge's slot list (all slots, or only those that changed).
    pub fn apply(&mut self, slots: &[SlotInfo]) -> SlotChange {
        let before: Vec<String> = self.by_mid.values().map(|s| s.name.clone()).collect();
        for s in slots {
            match &s.source {
                Some(src) => self.by_mid.insert(s.mid.clone(), src.clone()),
                None => self.by_mid.remove(&s.mid),
            };
        }
        let mut change = SlotChange::default();
        for src in self.by_mid.values() {
            if !before.contains(&src.name) && !change.appeared.iter().any(|a| a.name == src.name) {
                change.appeared.push(src.clone());
            }
        }
        for name in before {
            if !self.carries(&name) && !change.left.contains(&name) {
                change.left.push(name);
            }
        }
        change
    }

    /// The source slot `mid` carries now.
    pub fn source(&self, mid: &str) -> Option<&SlotSource> {
        self.by_mid.get(mid)
    }

    /// The slot carrying source `name` now.
    pub fn mid_of(&self, name: &str) -> Option<&String> {
        self.by_mid.iter().find(|(_, s)| s.name == name).map(|(m, _)| m)
    }

    pub fn carries(&self, name: &str) -> bool {
        self.by_mid.values().any(|s| s.name == name)
    }

    /// Every source carried now, once each.
    pub fn sources(&self) -> Vec<&SlotSource> {
        let mut out: Vec<&SlotSource> = Vec::new();
        for s in self.by_mid.values() {
            if !out.iter().any(|o| o.name == s.name) {
                out.push(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{SlotMedia, SourceKind};

    fn slot(mid: &str, src: Option<(&str, &str, SourceKind)>) -> SlotInfo {
        let media =
            if src.is_some_and(|s| s.2 == SourceKind::Audio) { SlotMedia::Audio } else { SlotMedia::Video };
        SlotInfo {
            mid: mid.into(),
            media,
            source: src.map(|(e, n, kind)| SlotSource { endpoint: e.into(), name: n.into(), kind }),
        }
    }

    #[test]
    fn sources_appear_move_and_leave() {
        let mut m = SlotMap::default();
        let c = m.apply(&[
            slot("0", Some(("a", "a-a0", SourceKind::Audio))),
            slot("1", Some(("a", "a-v0", SourceKind::Camera))),
            slot("2", None),
        ]);
        let names: Vec<&str> = c.appeared.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["a-a0", "a-v0"]);
        assert!(c.left.is_empty());
        assert_eq!(m.source("1").map(|s| s.name.as_str()), Some("a-v0"));
        // A source moving to another slot neither appears nor leaves.
        let c = m.apply(&[slot("1", None), slot("2", Some(("a", "a-v0", SourceKind::Camera)))]);
        assert_eq!(c, SlotChange::default());
        assert_eq!(m.source("2").map(|s| s.name.as_str()), Some("a-v0"));
        // A slot switching source: one leaves, one appears.
        let c = m.apply(&[slot("2", Some(("b", "b-s0", SourceKind::Screen)))]);
        assert_eq!(c.left, vec!["a-v0".to_string()]);
        assert_eq!(c.appeared[0].kind, SourceKind::Screen);
        assert!(m.carries("b-s0") && !m.carries("a-v0"));
        assert_eq!(m.mid_of("b-s0").map(String::as_str), Some("2"));
        assert_eq!(m.sources().len(), 2);
        // Cleared.
        let c = m.apply(&[slot("0", None), slot("2", None)]);
        assert_eq!(c.left, vec!["a-a0".to_string(), "b-s0".to_string()]);
        assert!(m.sources().is_empty());
    }
}
