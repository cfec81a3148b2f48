//! Fine-grained receive→send latency histogram (1 µs buckets up to 20 ms), lock-free.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: usize = 20_000;

pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
    overflow: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            overflow: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    pub fn record(&self, d: Duration) {
        self.record_n(d, 1);
    }

    /// `n` packets that took `d`.
    pub fn record_n(&self, d: Duration, n: u64) {
        let us = d.as_micros() as usize;
        match self.buckets.get(us) {
            Some(b) => b.fetch_add(n, Ordering::Relaxed),
            None => self.overflow.fetch_add(n, Ordering::Relaxed),
        };
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.overflow.store(0, Ordering::Relaxed);
    }

    /// Quantile in microseconds (`None` without samples).
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum::<u64>() + self.overflow.load(Ordering::Relaxed);
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (us, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(us as u64);
            }
        }
        Some(BUCKETS as u64)
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum::<u64>()
            + self.overflow.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile_us(0.5), None);
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.quantile_us(0.5), Some(50));
        assert_eq!(h.quantile_us(0.99), Some(99));
        assert_eq!(h.count(), 100);
    }
}
