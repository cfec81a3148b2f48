//! Who is on the other end: trusted proxies (CIDRs), the client address behind them
//! (`Forwarded` / `X-Forwarded-For`, believed only from a trusted proxy), and the limit on
//! connections per address that have not joined a room yet.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

use crate::state::lock;

/// An address block, `10.0.0.0/8`, `fd00::/8` or a plain address.
#[derive(Clone, Debug, PartialEq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| format!("bad prefix length in {s:?}"))?)),
            None => (s, None),
        };
        let net: IpAddr = a.parse().map_err(|_| format!("bad address {a:?}"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return Err(format!("prefix length {bits} too long for {a}"));
        }
        Ok(Cidr { net, bits })
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 { 0 } else { u32::MAX << (32 - self.bits) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 { 0 } else { u128::MAX << (128 - self.bits) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

pub fn trusted(proxies: &[Cidr], ip: IpAddr) -> bool {
    proxies.iter().any(|c| c.contains(ip))
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the right-most
/// address of the forwarding chain that is not itself a trusted proxy (the left-most entries
/// are whatever the client chose to send).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[Cidr]) -> IpAddr {
    if !trusted(proxies, peer) {
        return canonical(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    // RFC 7239 `Forwarded: for=1.2.3.4;proto=https, for="[2001:db8::1]:443"`.
    for v in headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()) {
        for elem in v.split(',') {
            for pair in elem.split(';') {
                let Some((k, val)) = pair.trim().split_once('=') else { continue };
                if k.trim().eq_ignore_ascii_case("for") {
                    chain.extend(parse_node(val));
                }
            }
        }
    }
    if chain.is_empty() {
        for v in headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()) {
            chain.extend(v.split(',').filter_map(parse_node));
        }
    }
    chain.into_iter().rev().map(canonical).find(|ip| !trusted(proxies, *ip)).unwrap_or(canonical(peer))
}

fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // `1.2.3.4:5678`
    s.rsplit_once(':').and_then(|(a, _)| a.parse().ok())
}

/// Connections per address that have not joined a room (yet).
#[derive(Default)]
pub struct UnauthLimiter {
    counts: Mutex<HashMap<IpAddr, u32>>,
}

/// Held while a connection is unauthenticated; dropping it frees the slot.
pub struct UnauthPermit {
    limiter: Arc<UnauthLimiter>,
    ip: IpAddr,
}

impl UnauthLimiter {
    /// A slot for `ip`, or `None` when it already has `max` (0: no limit).
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<UnauthPermit> {
        let mut counts = lock(&self.counts);
        let n = counts.entry(ip).or_insert(0);
        if max != 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(UnauthPermit { limiter: self.clone(), ip })
    }

    #[cfg(test)]
    pub fn count(&self, ip: IpAddr) -> u32 {
        lock(&self.counts).get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for UnauthPermit {
    fn drop(&mut self) {
        let mut counts = lock(&self.limiter.counts);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        assert!("fd00::/8".parse::<Cidr>().unwrap().contains("fd12::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let proxies: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.7".parse().unwrap());
        // From an untrusted peer the header is ignored.
        assert_eq!(client_ip("5.5.5.5".parse().unwrap(), &h, &proxies), "5.5.5.5".parse::<IpAddr>().unwrap());
        // From a proxy: the right-most untrusted hop, not the client-chosen left-most one.
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &h, &proxies),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        h.insert("forwarded", r#"for="[2001:db8::1]:443";proto=https"#.parse().unwrap());
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &h, &proxies),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &HeaderMap::new(), &proxies),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn limiter_counts_and_frees() {
        let l = Arc::new(UnauthLimiter::default());
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        let a = l.acquire(ip, 2).unwrap();
        let _b = l.acquire(ip, 2).unwrap();
        assert!(l.acquire(ip, 2).is_none());
        drop(a);
        assert!(l.acquire(ip, 2).is_some());
        assert!(l.acquire(ip, 0).is_some());
    }
}
