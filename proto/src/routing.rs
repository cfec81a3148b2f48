//! Routing across the shards of a group: one public domain over several shards.
//!
//! The operator renders the group's membership ([`GroupMembership`], JSON, file
//! [`GROUP_MEMBERSHIP_FILE`]) into a ConfigMap every signaling of the group mounts, and a shared
//! group secret (file) signalings present to each other's [`crate::paths::SIGNALING_INTERNAL_ROOMS`].
//! Signaling reads the membership ([`crate::config::RoutingConfig`] says where) and, on a
//! `join`, keeps a live room where it is, else sends the participant to the room's owner:
//! [`owner`], the first Ready, non-draining member in [`rendezvous_order`] (highest random
//! weight hashing, so adding or removing a member moves only the rooms that hash to it).
use std::hash::Hasher;

use serde::{Deserialize, Serialize};

/// File name of the membership inside the group's ConfigMap and the pod.
pub const GROUP_MEMBERSHIP_FILE: &str = "group.json";
/// Redirects after which signaling stops redirecting and takes the participant itself (no
/// loops when members disagree for a moment about the membership or about who is alive).
pub const MAX_HOPS: u8 = 2;
/// Query parameter of the client WebSocket URL counting the redirects a join followed:
/// signaling puts `hops + 1` into the `url` of each `redirect`, clients open the URL as given.
pub const HOPS_QUERY: &str = "hops";

/// `url` (a member's public WebSocket URL) with the hop count set to `hops`.
pub fn redirect_url(url: &str, hops: u8) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{HOPS_QUERY}={hops}")
}

/// One shard of a group, as every signaling of the group sees it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupMember {
    /// The Shard's name (unique in the group).
    pub shard: String,
    /// Public WebSocket URL of the shard's signaling as a browser reaches it, e.g.
    /// `wss://meet.example.com/_shard/meet-b/ws` ([`crate::paths::shard_ws_path`]).
    pub url: String,
    /// HTTP base URL other signalings query, e.g. `http://meet-b-signaling.ns.svc:8080`.
    pub internal_url: String,
    /// The shard's signaling is Ready.
    pub ready: bool,
    /// The shard takes no new rooms (its live rooms stay until they empty).
    pub draining: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl GroupMember {
    /// May own new rooms.
    pub fn eligible(&self) -> bool {
        self.ready && !self.draining
    }
}

/// The group's membership (`group.json`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct GroupMembership {
    pub group: String,
    pub members: Vec<GroupMember>,
}

impl GroupMembership {
    pub fn member(&self, shard: &str) -> Option<&GroupMember> {
        self.members.iter().find(|m| m.shard == shard)
    }

    /// What is wrong with it, if anything: empty or duplicate shard names, a member without a URL.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.members {
            if m.shard.is_empty() {
                return Err("a member has no shard name".into());
            }
            if !seen.insert(m.shard.as_str()) {
                return Err(format!("shard {:?} is listed twice", m.shard));
            }
            if m.url.is_empty() || m.internal_url.is_empty() {
                return Err(format!("shard {:?} needs url and internalUrl", m.shard));
            }
        }
        Ok(())
    }
}

/// The stable 64-bit weight of `room` on `shard`: SipHash-1-3 with fixed keys over the shard
/// name, a separator no name contains, and the room name. The same on every signaling, build
/// and platform (never std's `DefaultHasher`, whose algorithm may change between releases).
pub fn weight(shard: &str, room: &str) -> u64 {
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x636f_6e76_656e_6500, 0x726f_7574_696e_6700);
    h.write(shard.as_bytes());
    h.write(&[0xff]);
    h.write(room.as_bytes());
    h.finish()
}

/// The members in the room's preference order (highest weight first; ties by shard name).
pub fn rendezvous_order<'a>(room: &str, members: &'a [GroupMember]) -> Vec<&'a GroupMember> {
    let mut v: Vec<(u64, &GroupMember)> = members.iter().map(|m| (weight(&m.shard, room), m)).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.shard.cmp(&b.1.shard)));
    v.into_iter().map(|(_, m)| m).collect()
}

/// The member that owns a new room: the first Ready, non-draining one in rendezvous order.
pub fn owner<'a>(room: &str, members: &'a [GroupMember]) -> Option<&'a GroupMember> {
    rendezvous_order(room, members).into_iter().find(|m| m.eligible())
}

/// Answer of [`crate::paths::SIGNALING_INTERNAL_ROOMS`]: whether a room is live on the shard.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RoomPresence {
    /// The room has participants (or people waiting in its lobby) here.
    pub live: bool,
    pub participants: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn members(names: &[&str]) -> Vec<GroupMember> {
        names
            .iter()
            .map(|n| GroupMember {
                shard: n.to_string(),
                url: format!("wss://meet.example.com/_shard/{n}/ws"),
                internal_url: format!("http://{n}-signaling:8080"),
                ready: true,
                ..Default::default()
            })
            .collect()
    }

    fn rooms(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("room-{i}")).collect()
    }

    fn owners(rooms: &[String], m: &[GroupMember]) -> Vec<String> {
        rooms.iter().map(|r| owner(r, m).unwrap().shard.clone()).collect()
    }

    #[test]
    fn weight_is_stable() {
        // Pinned: every signaling of a group, whatever its build, must agree.
        assert_eq!(weight("meet-a", "standup"), weight("meet-a", "standup"));
        assert_ne!(weight("meet-a", "standup"), weight("meet-b", "standup"));
        assert_ne!(weight("meet-a", "b"), weight("meet-ab", ""), "the separator keeps fields apart");
        assert_eq!(weight("meet-a", "standup"), 0x51b0_a688_b1c7_ae15, "{:#x}", weight("meet-a", "standup"));
    }

    #[test]
    fn adding_a_member_moves_only_about_a_quarter_of_the_rooms_and_only_to_it() {
        let rs = rooms(10_000);
        let before = owners(&rs, &members(&["meet-a", "meet-b", "meet-c"]));
        let after = owners(&rs, &members(&["meet-a", "meet-b", "meet-c", "meet-d"]));
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(a, "meet-d", "a room moved between old members");
                moved += 1;
            }
        }
        let share = moved as f64 / rs.len() as f64;
        assert!((0.225..=0.275).contains(&share), "moved {share} (about 1/4 expected)");
    }

    #[test]
    fn removing_a_member_moves_only_its_rooms() {
        let rs = rooms(10_000);
        let before = owners(&rs, &members(&["meet-a", "meet-b", "meet-c"]));
        let after = owners(&rs, &members(&["meet-a", "meet-c"]));
        for (b, a) in before.iter().zip(&after) {
            if b != "meet-b" {
                assert_eq!(a, b, "a room not on the removed member moved");
            }
        }
    }

    #[test]
    fn draining_or_unready_members_own_nothing_and_their_rooms_go_to_the_next_in_order() {
        let rs = rooms(2_000);
        let all = members(&["meet-a", "meet-b", "meet-c"]);
        let mut drained = all.clone();
        drained[1].draining = true;
        let mut down = all.clone();
        down[1].ready = false;
        for r in &rs {
            let order = rendezvous_order(r, &all);
            let want = if order[0].shard == "meet-b" { &order[1].shard } else { &order[0].shard };
            assert_eq!(&owner(r, &drained).unwrap().shard, want);
            assert_eq!(&owner(r, &down).unwrap().shard, want);
        }
        let mut none = all.clone();
        for m in &mut none {
            m.ready = false;
        }
        assert!(owner("x", &none).is_none());
    }

    #[test]
    fn spread_is_within_ten_percent_of_even() {
        let rs = rooms(10_000);
        for names in [&["meet-a", "meet-b"][..], &["meet-a", "meet-b", "meet-c"], &["a", "b", "c", "d", "e"]]
        {
            let m = members(names);
            let mut count: HashMap<String, usize> = HashMap::new();
            for o in owners(&rs, &m) {
                *count.entry(o).or_default() += 1;
            }
            let even = rs.len() as f64 / names.len() as f64;
            for n in names {
                let c = count.get(*n).copied().unwrap_or(0) as f64;
                assert!((c - even).abs() <= even * 0.10, "{names:?}: {n} owns {c}, even is {even}");
            }
        }
    }

    #[test]
    fn membership_json_shape() {
        let text = r#"{"group":"meet","members":[{"shard":"meet-a","url":"wss://meet.example.com/_shard/meet-a/ws","internalUrl":"http://meet-a-signaling.ns.svc:8080","ready":true,"draining":false,"region":"eu"}]}"#;
        let g: GroupMembership = serde_json::from_str(text).unwrap();
        assert_eq!(g.members[0].internal_url, "http://meet-a-signaling.ns.svc:8080");
        assert_eq!(g.members[0].region.as_deref(), Some("eu"));
        assert!(g.validate().is_ok());
        assert_eq!(serde_json::to_string(&g).unwrap(), text);
        let twice = GroupMembership { group: "g".into(), members: members(&["a", "a"]) };
        assert!(twice.validate().is_err());
        assert_eq!(redirect_url("wss://m/_shard/b/ws", 1), "wss://m/_shard/b/ws?hops=1");
        assert_eq!(redirect_url("ws://h:1/ws?x=y", 2), "ws://h:1/ws?x=y&hops=2");
        let p: RoomPresence = serde_json::from_str(r#"{"live":true,"participants":2}"#).unwrap();
        assert_eq!(p, RoomPresence { live: true, participants: 2 });
    }
}
