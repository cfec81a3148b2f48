//! Who may open one more TCP connection (ICE-TCP and HTTP share the rule): each source address
//! has a cap, and at the total cap the oldest connection that has not yet proven itself (no
//! ICE answer, no request) makes room, so a flood of idle connections cannot lock anyone out.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// One held connection as the rule sees it.
pub struct Held {
    pub peer: SocketAddr,
    pub ip: IpAddr,
    pub opened: Instant,
    /// It did what a real client does (an ICE check answered, a request sent).
    pub proven: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Admit after closing this connection.
    Evict(SocketAddr),
    Refuse,
}

/// Pure: the decision for a new connection from `ip`.
pub fn admit(
    held: impl Iterator<Item = Held> + Clone,
    ip: IpAddr,
    max_per_source: usize,
    max_total: usize,
) -> Admission {
    if held.clone().filter(|h| h.ip == ip).count() >= max_per_source {
        return Admission::Refuse;
    }
    if held.clone().count() < max_total {
        return Admission::Admit;
    }
    match held.filter(|h| !h.proven).min_by_key(|h| h.opened) {
        Some(oldest) => Admission::Evict(oldest.peer),
        None => Admission::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn held(port: u16, ip: [u8; 4], age_s: u64, proven: bool, now: Instant) -> Held {
        let ip = IpAddr::from(ip);
        Held { peer: SocketAddr::new(ip, port), ip, opened: now - Duration::from_secs(age_s), proven }
    }

    #[test]
    fn per_source_cap_then_total_cap_evicting_the_oldest_unproven() {
        let now = Instant::now();
        let table = [
            held(1, [127, 0, 0, 2], 9, true, now),
            held(2, [127, 0, 0, 3], 5, false, now),
            held(3, [127, 0, 0, 3], 7, false, now),
        ];
        let a = |ip: [u8; 4], per, total| {
            admit(table.iter().map(|h| Held { ..*h }), IpAddr::from(ip), per, total)
        };
        assert_eq!(a([127, 0, 0, 3], 2, 10), Admission::Refuse, "the source is at its cap");
        assert_eq!(a([127, 0, 0, 4], 2, 10), Admission::Admit);
        assert_eq!(
            a([127, 0, 0, 4], 2, 3),
            Admission::Evict(table[2].peer),
            "oldest unproven, not the older proven"
        );
        let proven = [held(1, [127, 0, 0, 2], 9, true, now)];
        assert_eq!(
            admit(proven.iter().map(|h| Held { ..*h }), IpAddr::from([127, 0, 0, 4]), 2, 1),
            Admission::Refuse
        );
    }
}
