//! Bridge selection as a pure function: least stress in the participant's region, never a
//! draining, disconnected or stale bridge, respecting a per-bridge endpoint capacity. Like
//! Jicofo, each endpoint allocated since the bridge's last load report adds 0.01 stress.
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub region: Option<String>,
    pub stress: f64,
    pub endpoints: u64,
    pub draining: bool,
    pub connected: bool,
    pub last_seen: Instant,
    /// Endpoints allocated since the last load report.
    pub recent: u64,
}

/// Stress added per recently allocated endpoint (Jicofo's value).
pub const RECENT_STRESS: f64 = 0.01;

pub fn usable(c: &Candidate, now: Instant, stale: Duration, capacity: u64) -> bool {
    c.connected
        && !c.draining
        && now.saturating_duration_since(c.last_seen) <= stale
        && c.endpoints + c.recent < capacity
        && c.stress.is_finite()
        && c.stress < 1.0
}

pub fn select<'a>(
    candidates: impl IntoIterator<Item = &'a Candidate>,
    region: Option<&str>,
    now: Instant,
    stale: Duration,
    capacity: u64,
) -> Option<String> {
    let usable: Vec<&Candidate> =
        candidates.into_iter().filter(|c| usable(c, now, stale, capacity)).collect();
    let local: Vec<&Candidate> = match region {
        Some(r) => usable.iter().copied().filter(|c| c.region.as_deref() == Some(r)).collect(),
        None => Vec::new(),
    };
    let pool = if local.is_empty() { usable } else { local };
    pool.into_iter()
        .min_by(|a, b| {
            let sa = a.stress + RECENT_STRESS * a.recent as f64;
            let sb = b.stress + RECENT_STRESS * b.recent as f64;
            sa.total_cmp(&sb).then_with(|| a.id.cmp(&b.id))
        })
        .map(|c| c.id.clone())
}

/// A region name as it may come from a header or a token: 1..=64 of `a-z 0-9 - _ .`
/// (lower-cased); anything else counts as absent.
pub fn clean_region(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    ok.then_some(s)
}

/// The participant's region: the edge's header, else the token's claim, else the shard's.
pub fn participant_region(header: Option<&str>, claim: Option<&str>, shard: Option<&str>) -> Option<String> {
    header
        .and_then(clean_region)
        .or_else(|| claim.and_then(clean_region))
        .or_else(|| shard.map(str::to_string))
}

/// The `region` label of a participant's metrics.
pub fn region_label(region: Option<&str>) -> &str {
    region.unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_region_from_header_then_claim_then_shard() {
        assert_eq!(participant_region(Some("EU-West"), Some("us"), Some("ap")).as_deref(), Some("eu-west"));
        assert_eq!(participant_region(None, Some("us"), Some("ap")).as_deref(), Some("us"));
        assert_eq!(participant_region(Some("<bad>"), None, Some("ap")).as_deref(), Some("ap"));
        assert_eq!(participant_region(Some(""), Some(&"x".repeat(65)), None), None);
        // A participant from the US on an EU shard gets the US bridge; without a region of
        // its own, the shard's (EU) one; the least stressed elsewhere when its region has none.
        let cs = [c("eu-1", "eu", 0.1), c("us-1", "us", 0.6)];
        let us = participant_region(Some("us"), None, Some("eu"));
        assert_eq!(pick(&cs, us.as_deref()).as_deref(), Some("us-1"));
        let none = participant_region(None, None, Some("eu"));
        assert_eq!(pick(&cs, none.as_deref()).as_deref(), Some("eu-1"));
        let ap = participant_region(Some("ap"), None, Some("eu"));
        assert_eq!(pick(&cs, ap.as_deref()).as_deref(), Some("eu-1"));
    }

    fn c(id: &str, region: &str, stress: f64) -> Candidate {
        Candidate {
            id: id.into(),
            region: Some(region.into()),
            stress,
            endpoints: 0,
            draining: false,
            connected: true,
            last_seen: Instant::now(),
            recent: 0,
        }
    }
    const STALE: Duration = Duration::from_secs(15);

    fn pick(cs: &[Candidate], region: Option<&str>) -> Option<String> {
        select(cs, region, Instant::now(), STALE, 100)
    }

    #[test]
    fn least_stress_wins() {
        let cs = [c("a", "eu", 0.5), c("b", "eu", 0.2), c("c", "eu", 0.3)];
        assert_eq!(pick(&cs, Some("eu")).as_deref(), Some("b"));
    }

    #[test]
    fn region_preferred_then_fallback() {
        let cs = [c("a", "eu", 0.5), c("b", "us", 0.1)];
        assert_eq!(pick(&cs, Some("eu")).as_deref(), Some("a"));
        assert_eq!(pick(&cs, Some("ap")).as_deref(), Some("b"));
        assert_eq!(pick(&cs, None).as_deref(), Some("b"));
    }

    #[test]
    fn never_draining_stale_disconnected_or_full() {
        let mut d = c("d", "eu", 0.0);
        d.draining = true;
        let mut s = c("s", "eu", 0.0);
        s.last_seen = Instant::now() - Duration::from_secs(60);
        let mut x = c("x", "eu", 0.0);
        x.connected = false;
        let mut f = c("f", "eu", 0.0);
        f.endpoints = 100;
        let mut o = c("o", "eu", 0.0);
        o.stress = 1.0;
        let mut n = c("n", "eu", 0.0);
        n.stress = f64::NAN;
        assert_eq!(
            pick(&[d.clone(), s.clone(), x.clone(), f.clone(), o.clone(), n.clone()], Some("eu")),
            None
        );
        let ok = c("ok", "us", 0.9);
        assert_eq!(pick(&[d, s, x, f, o, n, ok], Some("eu")).as_deref(), Some("ok"));
    }

    #[test]
    fn recent_allocations_add_stress_and_count_against_capacity() {
        let mut a = c("a", "eu", 0.10);
        a.recent = 5; // 0.15
        let b = c("b", "eu", 0.12);
        assert_eq!(pick(&[a.clone(), b], Some("eu")).as_deref(), Some("b"));
        a.recent = 100;
        assert_eq!(pick(&[a], Some("eu")), None);
    }

    #[test]
    fn ties_are_deterministic() {
        let cs = [c("b", "eu", 0.1), c("a", "eu", 0.1)];
        assert_eq!(pick(&cs, None).as_deref(), Some("a"));
    }
}
