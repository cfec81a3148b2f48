//! The recorder's Prometheus metrics (`/metrics`; names from
//! `convene_proto::recorder::metrics`), one registry for the process, cloned where counted:
//! the control loop (recordings, capacity), each recording's task (tracks, bytes, losses,
//! keyframe requests: [`SessionExport`]), the uploads (pending bytes) and the compositions
//! (their duration).
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, Registry, TextEncoder};

use convene_proto::recorder::metrics as name;

use super::session::SessionStats;

#[derive(Clone)]
pub struct RecorderMetrics {
    pub registry: Registry,
    /// Recordings capturing media (what counts against the capacity).
    pub recordings_active: IntGauge,
    /// Track files open, over all recordings.
    pub tracks_active: IntGauge,
    pub bytes_written: IntCounter,
    pub packets_lost: IntCounter,
    pub keyframe_requests: IntCounter,
    pub upload_pending_bytes: IntGauge,
    pub compose_seconds: Histogram,
    pub capacity: IntGauge,
}

impl RecorderMetrics {
    pub fn new() -> RecorderMetrics {
        let registry = Registry::new();
        // Construction only fails on invalid names, which are constants here.
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric definition");
                registry.register(Box::new(m.clone())).expect("unique metric");
                m
            }};
        }
        RecorderMetrics {
            recordings_active: reg!(IntGauge::new(
                name::RECORDINGS_ACTIVE,
                "Recordings capturing media (stopping ones excluded)"
            )),
            tracks_active: reg!(IntGauge::new(name::TRACKS_ACTIVE, "Track files being written")),
            bytes_written: reg!(IntCounter::new(
                name::BYTES_WRITTEN,
                "Bytes written to recording files (tracks, manifests, chat)"
            )),
            packets_lost: reg!(IntCounter::new(
                name::PACKETS_LOST,
                "RTP packets lost on the way from the bridge, before NACK repair (estimated from \
                 the receiver reports' fraction lost)"
            )),
            keyframe_requests: reg!(IntCounter::new(name::KEYFRAME_REQUESTS, "PLIs sent to bridges")),
            upload_pending_bytes: reg!(IntGauge::new(
                name::UPLOAD_PENDING_BYTES,
                "Bytes of recordings on local disk not yet uploaded to object storage"
            )),
            compose_seconds: reg!(Histogram::with_opts(
                HistogramOpts::new(name::COMPOSE_SECONDS, "Time a composition (ffmpeg) took")
                    .buckets(vec![1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 3600.0])
            )),
            capacity: reg!(IntGauge::new(name::CAPACITY, "Recordings this recorder runs at once")),
            registry,
        }
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Text encoding of our own registry does not fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for RecorderMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One recording's share of the process's counters: what it exported last, so the next
/// [`SessionExport::export`] adds the difference (counters) or moves the gauge by it (open
/// tracks, which return to zero when the session's files are finished).
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionExport {
    bytes: u64,
    lost: u64,
    keyframe_requests: u64,
    tracks: i64,
}

impl SessionExport {
    pub fn export(&mut self, m: &RecorderMetrics, stats: &SessionStats, bytes_written: u64) {
        let add = |c: &IntCounter, now: u64, last: &mut u64| {
            if now > *last {
                c.inc_by(now - *last);
                *last = now;
            }
        };
        add(&m.bytes_written, bytes_written, &mut self.bytes);
        add(&m.packets_lost, stats.packets_lost, &mut self.lost);
        add(&m.keyframe_requests, stats.keyframe_requests, &mut self.keyframe_requests);
        let tracks = stats.files_opened.saturating_sub(stats.files_finished) as i64;
        if tracks != self.tracks {
            m.tracks_active.add(tracks - self.tracks);
            self.tracks = tracks;
        }
    }

    /// The session is gone (its task ended however it did): its open tracks no longer count.
    pub fn retire(&mut self, m: &RecorderMetrics) {
        m.tracks_active.sub(self.tracks);
        self.tracks = 0;
    }
}

/// One upload's share of [`RecorderMetrics::upload_pending_bytes`].
#[derive(Debug, Clone)]
pub struct PendingBytes {
    gauge: IntGauge,
    mine: i64,
}

impl PendingBytes {
    pub fn new(gauge: IntGauge) -> PendingBytes {
        PendingBytes { gauge, mine: 0 }
    }

    pub fn set(&mut self, bytes: u64) {
        let bytes = bytes as i64;
        self.gauge.add(bytes - self.mine);
        self.mine = bytes;
    }
}

impl Drop for PendingBytes {
    fn drop(&mut self) {
        self.gauge.sub(self.mine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::session::SessionStats;

    fn value(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn sessions_add_their_differences_and_leave_no_tracks() {
        let m = RecorderMetrics::new();
        let (mut a, mut b) = (SessionExport::default(), SessionExport::default());
        let mut s =
            SessionStats { files_opened: 2, keyframe_requests: 3, packets_lost: 1, ..Default::default() };
        a.export(&m, &s, 1000);
        b.export(&m, &s, 500);
        assert_eq!((m.tracks_active.get(), m.bytes_written.get(), m.keyframe_requests.get()), (4, 1500, 6));
        s.files_finished = 1;
        a.export(&m, &s, 1200);
        a.export(&m, &s, 1200);
        assert_eq!((m.tracks_active.get(), m.bytes_written.get(), m.packets_lost.get()), (3, 1700, 2));
        a.retire(&m);
        b.retire(&m);
        assert_eq!(m.tracks_active.get(), 0);
        let mut p = PendingBytes::new(m.upload_pending_bytes.clone());
        p.set(10);
        let mut q = PendingBytes::new(m.upload_pending_bytes.clone());
        q.set(5);
        p.set(4);
        assert_eq!(m.upload_pending_bytes.get(), 9);
        drop(q);
        assert_eq!(m.upload_pending_bytes.get(), 4);
        m.compose_seconds.observe(2.5);
        let text = m.render();
        for n in [
            name::RECORDINGS_ACTIVE,
            name::TRACKS_ACTIVE,
            name::BYTES_WRITTEN,
            name::PACKETS_LOST,
            name::KEYFRAME_REQUESTS,
            name::UPLOAD_PENDING_BYTES,
            name::CAPACITY,
        ] {
            assert!(value(&text, n).is_some(), "{n} in\n{text}");
        }
        assert_eq!(value(&text, &format!("{}_count", name::COMPOSE_SECONDS)), Some(1.0), "{text}");
        assert_eq!(value(&text, name::BYTES_WRITTEN), Some(1700.0));
    }
}
