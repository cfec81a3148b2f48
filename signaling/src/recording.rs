//! A room's recording: a moderator's `set_recording` picks a recorder ([`crate::recorder`]),
//! allocates a hidden endpoint for it on the room's bridge and relays the negotiation between
//! them; stopping (a moderator, the room ending, the recorder or the bridge going away) tells
//! the recorder to finish and frees the endpoint.
//!
//! The hidden endpoint is never a participant: it is not in `participants`, presence,
//! connection states or anyone's slots (the bridge keeps it out of those). The room only holds
//! [`Recording`], which its `room` info shows as `recording` and `recording_by`.
//!
//! Not yet: a recording does not follow its conference to another bridge, and a recorder lost
//! mid-recording is not replaced by another one (issue 13); both end the recording with a
//! reason instead.
use std::sync::Arc;

use convene_proto::control::{self, FromBridge, ReceiverConstraints, ToBridge};
use convene_proto::recorder::{FromRecorder, ToRecorder};

use crate::protocol::{ErrorCode, RecordingStopReason, ServerMsg};
use crate::room::{Room, refuse};
use crate::state::{App, Tx, lock};

/// The recording a room holds (at most one).
#[derive(Debug, Clone)]
pub struct Recording {
    pub id: String,
    /// The room, which is the conference on the bridge.
    pub room: String,
    /// The recorder's hidden endpoint on `bridge`.
    pub endpoint: String,
    pub recorder: String,
    pub bridge: String,
    /// Display name of the moderator who started it.
    pub by: String,
    /// The recorder accepted and the bridge answered: the room is told it is recording.
    pub running: bool,
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A moderator's `set_recording`. Starting is asynchronous: the room learns of it from a
/// `room` message once the recorder is receiving; a failure reaches the moderator as an error.
pub fn set(app: &Arc<App>, r: &mut Room, pid: &str, tx: &Tx, by: String, on: bool) {
    if !on {
        stop(app, r, Some(by), RecordingStopReason::Stopped);
        return;
    }
    if let Some(rec) = &r.recording {
        if rec.running {
            r.broadcast_room();
        }
        return;
    }
    let Some(bridge) = r.bridge.clone() else {
        return refuse(app, tx, ErrorCode::RecordingFailed, "the room has no media bridge yet");
    };
    let started_wall_ms = wall_ms();
    let id = format!("{started_wall_ms}-{}", app.next_id());
    let Some((recorder, _)) = crate::recorder::assign(app, &id, &r.name) else {
        return refuse(app, tx, ErrorCode::NoRecorder, "no recorder is free");
    };
    let rec = Recording {
        endpoint: format!("rec-{id}"),
        id,
        room: r.name.clone(),
        recorder,
        bridge,
        by,
        running: false,
    };
    tracing::info!(room = %r.name, recording = %rec.id, recorder = %rec.recorder, bridge = %rec.bridge, "starting a recording");
    r.recording = Some(rec.clone());
    tokio::spawn(start(app.clone(), r.name.clone(), rec, pid.to_string(), started_wall_ms));
}

async fn start(app: Arc<App>, room: String, rec: Recording, moderator: String, started_wall_ms: u64) {
    if let Err(why) = negotiate(&app, &room, &rec, started_wall_ms).await {
        tracing::warn!(%room, recording = %rec.id, %why, "recording failed to start");
        let ours = take_if(&app, &room, &rec.id).is_some();
        cleanup(app.clone(), rec.clone()).await;
        if ours && let Some(handle) = app.room(&room) {
            let r = lock(&handle);
            if let Some(p) = r.participants.get(&moderator) {
                refuse(&app, &p.tx, ErrorCode::RecordingFailed, format!("recording failed to start: {why}"));
            }
        }
        return;
    }
    let still_ours = match app.room(&room) {
        Some(handle) => {
            let mut r = lock(&handle);
            match r.recording.as_mut() {
                Some(x) if x.id == rec.id => {
                    x.running = true;
                    r.broadcast_room();
                    true
                }
                _ => false,
            }
        }
        None => false,
    };
    if still_ours {
        tracing::info!(%room, recording = %rec.id, "recording");
    } else {
        // Stopped (or the room ended) while it started.
        cleanup(app, rec).await;
    }
}

/// Hidden endpoint, the recorder's offer to the bridge, the bridge's answer back (relayed in
/// order by [`crate::bridge::on_message`], as the bridge's slot offer follows right after it).
async fn negotiate(app: &App, room: &str, rec: &Recording, started_wall_ms: u64) -> Result<(), String> {
    let bridge =
        app.lock().bridges.get(&rec.bridge).and_then(|b| b.conn.clone()).ok_or("the bridge is gone")?;
    let recorder = crate::recorder::conn(app, &rec.recorder).ok_or("the recorder is gone")?;
    let candidates = match bridge
        .request(ToBridge::AllocateHiddenEndpoint {
            id: app.next_id(),
            conference: room.to_string(),
            endpoint: rec.endpoint.clone(),
        })
        .await
    {
        Some(FromBridge::Allocated { candidates, .. }) => candidates,
        other => {
            return Err(format!("the bridge refused the recorder's endpoint: {}", reply(other.as_ref())));
        }
    };
    // Before the offer, so the bridge starts on the layers the recorder wants.
    let video_height = app.lock().recorders.get(&rec.recorder).map_or(360, |r| r.video_height);
    bridge.send(&ToBridge::ReceiverConstraints {
        id: app.next_id(),
        conference: room.to_string(),
        endpoint: rec.endpoint.clone(),
        constraints: ReceiverConstraints { default_max_height: video_height, ..Default::default() },
    });
    let sdp = match recorder
        .request(ToRecorder::Start {
            id: app.next_id(),
            recording: rec.id.clone(),
            conference: room.to_string(),
            endpoint: rec.endpoint.clone(),
            started_wall_ms,
            candidates,
        })
        .await
    {
        Some(FromRecorder::Offer { sdp, .. }) => sdp,
        Some(FromRecorder::Error { code, message, .. }) => {
            return Err(format!("the recorder refused ({code:?}): {message}"));
        }
        _ => return Err("the recorder did not answer".into()),
    };
    match bridge
        .request(ToBridge::Offer {
            id: app.next_id(),
            conference: room.to_string(),
            endpoint: rec.endpoint.clone(),
            sdp,
            sources: vec![],
        })
        .await
    {
        Some(FromBridge::Answer { .. }) => Ok(()),
        other => Err(format!("the bridge refused the recorder's offer: {}", reply(other.as_ref()))),
    }
}

fn reply(m: Option<&FromBridge>) -> String {
    m.map_or_else(|| "no reply".into(), control::to_json)
}

/// Take the room's recording if it is `id`.
fn take_if(app: &App, room: &str, id: &str) -> Option<Recording> {
    let handle = app.room(room)?;
    let mut r = lock(&handle);
    if r.recording.as_ref().is_some_and(|x| x.id == id) { r.recording.take() } else { None }
}

/// End the room's recording (if any): the room is told why (if it had been told it started),
/// the recorder finishes and the endpoint goes.
pub fn stop(app: &Arc<App>, r: &mut Room, by: Option<String>, reason: RecordingStopReason) {
    let Some(rec) = r.recording.take() else { return };
    tracing::info!(room = %r.name, recording = %rec.id, ?reason, "recording stopped");
    if rec.running {
        r.broadcast(&ServerMsg::RecordingStopped { by, reason }, None);
        r.broadcast_room();
    }
    tokio::spawn(cleanup(app.clone(), rec));
}

/// Recording `id` of `room` ended without a moderator (its recorder failed or went away).
pub fn ended(app: &Arc<App>, room: &str, id: &str, reason: RecordingStopReason) {
    let Some(handle) = app.room(room) else { return };
    let mut r = lock(&handle);
    if r.recording.as_ref().is_some_and(|x| x.id == id) {
        stop(app, &mut r, None, reason);
    }
}

/// The recorder finishes (its files are complete once it replies), then the hidden endpoint
/// is freed and the recorder's place with it. Harmless on a recording either never heard of.
async fn cleanup(app: Arc<App>, rec: Recording) {
    if let Some(c) = crate::recorder::conn(&app, &rec.recorder) {
        c.request(ToRecorder::Stop { id: app.next_id(), recording: rec.id.clone() }).await;
    }
    crate::recorder::release(&app, &rec.recorder, &rec.id);
    let bridge = app.lock().bridges.get(&rec.bridge).and_then(|b| b.conn.clone());
    if let Some(b) = bridge {
        b.send(&ToBridge::ExpireEndpoint { id: app.next_id(), conference: rec.room, endpoint: rec.endpoint });
    }
}

/// The recorder's answer to the bridge's slot offer: to the bridge holding its endpoint.
pub fn relay_answer(app: &App, recorder: &str, recording: &str, offer_id: control::OfferId, sdp: String) {
    let room = app.lock().recorders.get(recorder).and_then(|r| r.recordings.get(recording).cloned());
    let Some(rec) = room.and_then(|room| current(app, &room)).filter(|x| x.id == recording) else { return };
    let bridge = app.lock().bridges.get(&rec.bridge).and_then(|b| b.conn.clone());
    if let Some(b) = bridge {
        b.send(&ToBridge::Answer { offer_id, conference: rec.room, endpoint: rec.endpoint, sdp });
    }
}

fn current(app: &App, room: &str) -> Option<Recording> {
    let handle = app.room(room)?;
    lock(&handle).recording.clone()
}

/// The recording whose hidden endpoint `endpoint` of `conference` on `bridge` is, if any.
pub fn of_endpoint(app: &App, bridge: &str, conference: &str, endpoint: &str) -> Option<Recording> {
    current(app, conference).filter(|x| x.endpoint == endpoint && x.bridge == bridge)
}

/// Relay what the bridge says to a recording's hidden endpoint to its recorder; false when
/// `endpoint` is no recording's.
pub fn from_bridge(app: &App, bridge: &str, msg: &FromBridge) -> bool {
    let (conference, endpoint) = match msg {
        FromBridge::Answer { conference, endpoint, .. }
        | FromBridge::Offer { conference, endpoint, .. }
        | FromBridge::Slots { conference, endpoint, .. }
        | FromBridge::EndpointState { conference, endpoint, .. } => (conference, endpoint),
        _ => return false,
    };
    let Some(rec) = of_endpoint(app, bridge, conference, endpoint) else { return false };
    let out = match msg {
        FromBridge::Answer { sdp, .. } => ToRecorder::Answer { recording: rec.id, sdp: sdp.clone() },
        FromBridge::Offer { offer_id, sdp, slots, .. } => ToRecorder::Offer {
            recording: rec.id,
            offer_id: *offer_id,
            sdp: sdp.clone(),
            slots: slots.clone(),
        },
        FromBridge::Slots { slots, .. } => ToRecorder::Slots { recording: rec.id, slots: slots.clone() },
        // Its connection state is nobody's business in the room.
        _ => return true,
    };
    crate::recorder::send(app, &rec.recorder, &out);
    true
}
