//! Commands from the async side to the media worker(s). With one worker they go on its
//! channel and the waker datagram wakes it. With several, every conference has an owner: the
//! worker its first endpoint was allocated on (the least loaded then), and every later
//! message naming the conference goes there too, so all its endpoints share one worker.
//! ICE-TCP packets are steered like UDP (`steer.rs`); drain and shutdown reach every worker.
//! Every channel to a worker is a [`WorkerTx`]: it also wakes the worker's socket wait.
//!
//! A worker gives its conference back when the last endpoint left, but only once it has
//! processed every message sent to it for that conference: otherwise an allocation still in
//! its queue would be followed by others on a different worker, splitting the meeting.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::IntGaugeVec;
use tracing::error;

use super::Command;
use super::steer::{Steering, WORKER_QUEUE, WorkerInput, WorkerTx};
use super::udp::Waker;
use crate::control::{ErrorCode, FromBridge, ToBridge};
use crate::control_queue::ControlOut;
use crate::sfu::Census;

/// State the dispatcher, the steering and the workers share.
pub struct Shared {
    pub steering: Arc<Steering>,
    owners: Mutex<Owners>,
    /// Per worker: endpoints, conferences, largest conference (its core's census).
    census: Vec<[AtomicU64; 3]>,
    /// Per worker: datagram batches queued and not yet taken.
    queued: Vec<AtomicUsize>,
    /// `Owners::owned` per worker, exported (set under the owners lock, so never stale).
    owned_gauge: IntGaugeVec,
}

#[derive(Default)]
struct Owners {
    /// Conference → (worker, number of the last message sent for it to that worker).
    by_conference: HashMap<String, (usize, u64)>,
    /// Messages sent to each worker so far.
    sent: Vec<u64>,
    owned: Vec<usize>,
}

impl Shared {
    /// `owned_gauge`: labelled by worker index (`Metrics::worker_conferences`).
    pub fn new(workers: usize, owned_gauge: IntGaugeVec) -> Shared {
        for w in 0..workers {
            owned_gauge.with_label_values(&[&w.to_string()]).set(0);
        }
        Shared {
            steering: Arc::new(Steering::new(workers)),
            owners: Mutex::new(Owners {
                sent: vec![0; workers],
                owned: vec![0; workers],
                ..Owners::default()
            }),
            census: (0..workers).map(|_| Default::default()).collect(),
            queued: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            owned_gauge,
        }
    }

    fn set_owned(&self, o: &mut Owners, worker: usize, owned: usize) {
        o.owned[worker] = owned;
        self.owned_gauge.with_label_values(&[&worker.to_string()]).set(owned as i64);
    }

    pub fn set_census(&self, worker: usize, c: Census) {
        let s = &self.census[worker];
        s[0].store(c.endpoints, Ordering::Relaxed);
        s[1].store(c.conferences, Ordering::Relaxed);
        s[2].store(c.largest_conference, Ordering::Relaxed);
    }

    /// The whole bridge's census (what the gauges and the load report show).
    pub fn total_census(&self) -> Census {
        let mut t = Census::default();
        for s in &self.census {
            t.endpoints += s[0].load(Ordering::Relaxed);
            t.conferences += s[1].load(Ordering::Relaxed);
            t.largest_conference = t.largest_conference.max(s[2].load(Ordering::Relaxed));
        }
        t
    }

    fn endpoints(&self, worker: usize) -> u64 {
        self.census[worker][0].load(Ordering::Relaxed)
    }

    /// A batch for `worker` may be queued (false: it has too many waiting; drop).
    pub fn try_enqueue(&self, worker: usize) -> bool {
        let q = &self.queued[worker];
        if q.load(Ordering::Relaxed) >= WORKER_QUEUE {
            return false;
        }
        q.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn dequeued(&self, worker: usize) {
        self.queued[worker].fetch_sub(1, Ordering::Relaxed);
    }

    /// Give back the conferences in `ended` that `worker` no longer hosts and has no message
    /// for still in its queue; the others stay in `ended` for a later try.
    pub fn release(
        &self,
        worker: usize,
        processed: u64,
        ended: &mut Vec<String>,
        hosts: impl Fn(&str) -> bool,
    ) {
        let mut o = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        ended.retain(|c| match o.by_conference.get(c) {
            Some(&(w, last)) if w == worker => {
                if hosts(c) {
                    return false; // back in use: nothing to give back
                }
                if processed < last {
                    return true;
                }
                o.by_conference.remove(c);
                let owned = o.owned[worker] - 1;
                self.set_owned(&mut o, worker, owned);
                false
            }
            _ => false,
        });
    }

    /// The worker for a message about `conference`; an allocation makes it the owner.
    fn route(&self, conference: &str, allocate: bool) -> usize {
        let mut o = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        let o = &mut *o;
        let w = match o.by_conference.get(conference) {
            Some(&(w, _)) => w,
            // Least loaded: fewest endpoints, then fewest conferences (a burst of new
            // conferences spreads before their endpoints are counted).
            None => (0..o.sent.len()).min_by_key(|&w| (self.endpoints(w), o.owned[w])).unwrap_or(0),
        };
        o.sent[w] += 1;
        if (allocate || o.by_conference.contains_key(conference))
            && o.by_conference.insert(conference.to_string(), (w, o.sent[w])).is_none()
        {
            let owned = o.owned[w] + 1;
            self.set_owned(o, w, owned);
        }
        w
    }
}

/// A worker's end when there are several.
pub struct Worker {
    pub index: usize,
    pub input: std::sync::mpsc::Receiver<WorkerInput>,
    pub shared: Arc<Shared>,
    /// Every worker's channel (this one's too), for datagrams read for another.
    pub peers: Vec<WorkerTx>,
}

/// The async side's way to the workers.
pub enum Dispatch {
    One { tx: std::sync::mpsc::Sender<Command>, waker: Waker },
    Many { workers: Vec<WorkerTx>, shared: Arc<Shared>, control_out: ControlOut, max_endpoints: u64 },
}

impl Dispatch {
    pub fn send(&self, c: Command) {
        match self {
            Dispatch::One { tx, waker } => {
                if tx.send(c).is_err() {
                    error!("media thread is gone");
                }
                waker.wake();
            }
            Dispatch::Many { workers, shared, control_out, max_endpoints } => {
                let to = |w: usize, c: Command| {
                    if !workers[w].send(WorkerInput::Command(c)) {
                        error!(worker = w, "media worker is gone");
                    }
                };
                match c {
                    Command::Control(m) => {
                        let Some((conference, allocate)) = conference_of(&m) else { return };
                        // The whole bridge's capacity: each worker alone would allow all of it.
                        if allocate && shared.total_census().endpoints >= *max_endpoints {
                            if let Some(id) = request_id(&m) {
                                control_out.push(FromBridge::error(
                                    Some(id),
                                    ErrorCode::Capacity,
                                    "bridge is full",
                                ));
                            }
                            return;
                        }
                        to(shared.route(conference, allocate), Command::Control(m));
                    }
                    Command::TcpPacket { source, .. } => {
                        let Command::TcpPacket { data, .. } = &c else { return };
                        to(shared.steering.worker_for(source, data), c);
                    }
                    Command::SetDraining(d) => {
                        (0..workers.len()).for_each(|w| to(w, Command::SetDraining(d)))
                    }
                    Command::Shutdown => (0..workers.len()).for_each(|w| to(w, Command::Shutdown)),
                }
            }
        }
    }
}

/// The conference a control message is about, and whether it allocates an endpoint.
fn conference_of(m: &ToBridge) -> Option<(&str, bool)> {
    Some(match m {
        ToBridge::AllocateEndpoint { conference, .. }
        | ToBridge::AllocateHiddenEndpoint { conference, .. } => (conference, true),
        ToBridge::Offer { conference, .. }
        | ToBridge::IceCandidate { conference, .. }
        | ToBridge::ReceiverConstraints { conference, .. }
        | ToBridge::ExpireEndpoint { conference, .. }
        | ToBridge::ExpireConference { conference, .. }
        | ToBridge::Answer { conference, .. } => (conference, false),
        ToBridge::IceStats { .. } => return None,
    })
}

fn request_id(m: &ToBridge) -> Option<crate::control::RequestId> {
    match m {
        ToBridge::AllocateEndpoint { id, .. } | ToBridge::AllocateHiddenEndpoint { id, .. } => Some(*id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge() -> IntGaugeVec {
        crate::metrics::Metrics::new().worker_conferences
    }

    fn census(endpoints: u64) -> Census {
        Census { endpoints, conferences: 1, largest_conference: endpoints }
    }

    #[test]
    fn conferences_spread_and_stay_with_their_worker() {
        let s = Shared::new(2, gauge());
        let a = s.route("a", true);
        let b = s.route("b", true);
        assert_ne!(a, b, "two new conferences go to two workers");
        assert_eq!(s.route("a", false), a);
        assert_eq!(s.route("a", true), a, "a second endpoint joins the first");
        // Messages about unknown conferences are not remembered (no table growth).
        s.route("nobody", false);
        assert!(!s.owners.lock().unwrap().by_conference.contains_key("nobody"));
        s.set_census(a, census(5));
        s.set_census(b, census(1));
        assert_eq!(s.total_census(), Census { endpoints: 6, conferences: 2, largest_conference: 5 });
        assert_eq!(s.route("c", true), b, "the least loaded worker takes a new conference");
    }

    #[test]
    fn a_conference_is_given_back_only_after_its_queued_messages() {
        let s = Shared::new(2, gauge());
        let w = s.route("a", true); // message 1 to w
        s.route("a", true); // message 2, still queued
        let mut ended = vec!["a".to_string()];
        s.release(w, 1, &mut ended, |_| false);
        assert_eq!(ended, ["a"], "message 2 is not processed yet: kept");
        s.release(w, 2, &mut ended, |_| true);
        assert!(ended.is_empty(), "hosted again: nothing to give back");
        let mut ended = vec!["a".to_string()];
        s.release(w, 2, &mut ended, |_| false);
        assert!(ended.is_empty());
        assert!(!s.owners.lock().unwrap().by_conference.contains_key("a"));
    }

    #[test]
    fn worker_queues_are_bounded() {
        let s = Shared::new(1, gauge());
        for _ in 0..WORKER_QUEUE {
            assert!(s.try_enqueue(0));
        }
        assert!(!s.try_enqueue(0));
        s.dequeued(0);
        assert!(s.try_enqueue(0));
    }
}
