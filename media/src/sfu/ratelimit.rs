//! Token buckets for floods and log lines.
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_s: f64, burst: f64, now: Instant) -> Self {
        TokenBucket { rate: rate_per_s, burst, tokens: burst, last: now }
    }

    pub fn last_used(&self) -> Instant {
        self.last
    }

    /// Take one token; false when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills() {
        let t = Instant::now();
        let mut b = TokenBucket::new(10.0, 2.0, t);
        assert!(b.allow(t));
        assert!(b.allow(t));
        assert!(!b.allow(t));
        assert!(b.allow(t + Duration::from_millis(150)));
        assert!(!b.allow(t + Duration::from_millis(150)));
    }
}
