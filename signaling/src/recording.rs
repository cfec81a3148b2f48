//! A room's recording: a moderator's `set_recording` picks a recorder ([`crate::recorder`]),
//! allocates a hidden endpoint for it on the room's bridge and relays the negotiation between
//! them; stopping (a moderator, the room ending, the recorder or the bridge going away) tells
//! the recorder to finish and frees the endpoint.
//!
//! The hidden endpoint is never a participant: it is not in `participants`, presence,
//! connection states or anyone's slots (the bridge keeps it out of those). The room only holds
//! [`Recording`], which its `room` info shows as `recording` and `recording_by`.
//!
//! While it runs, the recorder hears what the room hears of its people ([`observe`]): the
//! whole participant list on every change (names, mute and screen-share spans in its manifest)
//! and the room's public chat (`chat.txt`).
//!
//! An interruption does not end it ([`interrupted`]): when its recorder is lost, or the
//! conference moves to another bridge, it continues as a new segment (a new hidden endpoint,
//! the least-loaded recorder) into the same recording, the room still shown recording; only
//! when no recorder or bridge can take it within [`CONTINUE_WITHIN`] does it stop, with why.
use std::sync::Arc;
use std::time::Duration;

use convene_proto::control::{self, FromBridge, ReceiverConstraints, ToBridge};
use convene_proto::recorder::{
    self, Continuation, FromRecorder, Interruption, RecordedParticipant, ToRecorder,
};

use crate::protocol::{ErrorCode, RecordingStopReason, ServerMsg};
use crate::room::{Room, refuse};
use crate::state::{App, RecorderConn, Tx, lock};

/// A recording continues in at most this many segments; a recorder or bridge failing more
/// often than that is not going to give a usable recording.
pub const MAX_SEGMENTS: u32 = 20;

/// How long an interrupted recording waits for the room's new bridge.
pub const CONTINUE_WITHIN: Duration = Duration::from_secs(10);

/// The recording a room holds (at most one).
#[derive(Debug, Clone)]
pub struct Recording {
    /// This segment's id (the recorder's key for it): the recording's id, then `-s<n>` from
    /// segment 2 on.
    pub id: String,
    /// The recording's start (ms since the Unix epoch), shared by its segments.
    pub started_wall_ms: u64,
    /// 1 for the first segment.
    pub segment: u32,
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
    pub conn: RecorderConn,
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
    let Some((recorder, conn)) = crate::recorder::assign(app, &id, &r.name) else {
        return refuse(app, tx, ErrorCode::NoRecorder, "no recorder is free");
    };
    let rec = Recording {
        endpoint: format!("rec-{id}"),
        id,
        started_wall_ms,
        segment: 1,
        room: r.name.clone(),
        recorder,
        bridge,
        by,
        running: false,
        conn,
    };
    tracing::info!(room = %r.name, recording = %rec.id, recorder = %rec.recorder, bridge = %rec.bridge, "starting a recording");
    r.recording = Some(rec.clone());
    tokio::spawn(start(app.clone(), r.name.clone(), rec, Some(pid.to_string()), None));
}

/// Negotiate `rec` (a first segment, or a continuation after `continues`); once it runs the
/// room is told (again) and the recorder learns who is there. A failure reaches `moderator`
/// (the one who asked), or everyone as the recording's stop.
async fn start(
    app: Arc<App>,
    room: String,
    rec: Recording,
    moderator: Option<String>,
    continues: Option<Continuation>,
) {
    let reason = continues.as_ref().map(|c| stop_reason(c.reason));
    if let Err(why) = negotiate(&app, &room, &rec, continues).await {
        tracing::warn!(%room, recording = %rec.id, why = %why.1, "recording failed to start");
        if let Some(reason) = reason {
            ended(&app, &room, &rec.id, reason);
            return;
        }
        let ours = take_if(&app, &room, &rec.id).is_some();
        cleanup(app.clone(), rec.clone()).await;
        if ours
            && let Some(handle) = app.room(&room)
            && let Some(p) = moderator.and_then(|m| lock(&handle).participants.get(&m).map(|p| p.tx.clone()))
        {
            refuse(&app, &p, why.0, format!("recording failed to start: {}", why.1));
        }
        return;
    }
    let still_ours = match app.room(&room) {
        Some(handle) => {
            let mut r = lock(&handle);
            match r.recording.as_mut() {
                Some(x) if x.id == rec.id => {
                    x.running = true;
                    let x = x.clone();
                    if rec.segment == 1 {
                        r.broadcast_room();
                    }
                    send_participants(&x, &r);
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
async fn negotiate(
    app: &App,
    room: &str,
    rec: &Recording,
    continues: Option<Continuation>,
) -> Result<(), (ErrorCode, String)> {
    let failed = |why: String| (ErrorCode::RecordingFailed, why);
    let bridge = app.lock().bridges.get(&rec.bridge).and_then(|b| b.conn.clone());
    let bridge = bridge.ok_or_else(|| failed("the bridge is gone".into()))?;
    let recorder =
        crate::recorder::conn(app, &rec.recorder).ok_or_else(|| failed("the recorder is gone".into()))?;
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
            return Err(failed(format!(
                "the bridge refused the recorder's endpoint: {}",
                reply(other.as_ref())
            )));
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
            started_wall_ms: rec.started_wall_ms,
            candidates,
            segment: rec.segment,
            continues,
        })
        .await
    {
        Some(FromRecorder::Offer { sdp, .. }) => sdp,
        Some(FromRecorder::Error { code, message, .. }) => {
            let ours = match code {
                recorder::ErrorCode::Storage => ErrorCode::RecordingStorageFailed,
                _ => ErrorCode::RecordingFailed,
            };
            return Err((ours, format!("the recorder refused ({code:?}): {message}")));
        }
        _ => return Err(failed("the recorder did not answer".into())),
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
        other => Err(failed(format!("the bridge refused the recorder's offer: {}", reply(other.as_ref())))),
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
    if let Some(rec) = take_and_tell(r, by, reason) {
        tokio::spawn(cleanup(app.clone(), rec));
    }
}

/// [`stop`] for a recording whose recorder and endpoint are already freed.
fn stop_without_cleanup(r: &mut Room, reason: RecordingStopReason) {
    take_and_tell(r, None, reason);
}

fn take_and_tell(r: &mut Room, by: Option<String>, reason: RecordingStopReason) -> Option<Recording> {
    let rec = r.recording.take()?;
    tracing::info!(room = %r.name, recording = %rec.id, ?reason, "recording stopped");
    if rec.running {
        r.broadcast(&ServerMsg::RecordingStopped { by, reason }, None);
        r.broadcast_room();
    }
    Some(rec)
}

/// Recording `id` of `room` ended without a moderator (its recorder failed or went away).
pub fn ended(app: &Arc<App>, room: &str, id: &str, reason: RecordingStopReason) {
    let Some(handle) = app.room(room) else { return };
    let mut r = lock(&handle);
    if r.recording.as_ref().is_some_and(|x| x.id == id) {
        stop(app, &mut r, None, reason);
    }
}

/// The recording `id` of `room` was interrupted `why`: it continues as its next segment with
/// the least-loaded recorder on the room's (new) bridge, or stops when none can take it.
pub fn interrupted(app: &Arc<App>, room: &str, id: &str, why: Interruption) {
    let Some(handle) = app.room(room) else { return };
    let mut r = lock(&handle);
    if r.recording.as_ref().is_some_and(|x| x.id == id) {
        interrupt(app, &mut r, why);
    }
}

/// [`interrupted`] with the room's lock held (its recording is the one interrupted). The room
/// keeps showing the recording while the old segment is finished and freed, the room finds
/// its bridge again and a recorder takes the next segment.
pub fn interrupt(app: &Arc<App>, r: &mut Room, why: Interruption) {
    let stop_reason = stop_reason(why);
    let Some(old) = r.recording.clone() else { return };
    if !old.running || old.segment >= MAX_SEGMENTS {
        // Still starting (the starter reports the failure), or interrupted too often.
        return stop(app, r, None, stop_reason);
    }
    let continues = Continuation { reason: why, interrupted_wall_ms: wall_ms() };
    tracing::warn!(room = %r.name, recording = %old.id, ?why, "recording interrupted: continuing in a new segment");
    let (app, room) = (app.clone(), r.name.clone());
    tokio::spawn(async move {
        // First the old segment's end, so its recorder (if alive) has its place back.
        end_segment(app.clone(), old.clone(), true).await;
        let Some(bridge) = bridge_of(&app, &room).await else {
            return ended(&app, &room, &old.id, stop_reason);
        };
        let Some(next) = next_segment(&app, &room, &old, bridge) else { return };
        start(app, room, next, None, Some(continues)).await;
    });
}

fn stop_reason(why: Interruption) -> RecordingStopReason {
    match why {
        Interruption::RecorderLost => RecordingStopReason::RecorderLost,
        Interruption::BridgeMigration => RecordingStopReason::BridgeLost,
    }
}

/// The segment after `old` on `bridge` with the least-loaded recorder, now the room's; `None`
/// when the room stopped it meanwhile, or (stopping it) when no recorder is free.
fn next_segment(app: &Arc<App>, room: &str, old: &Recording, bridge: String) -> Option<Recording> {
    let handle = app.room(room)?;
    let mut r = lock(&handle);
    if r.recording.as_ref().is_none_or(|x| x.id != old.id) {
        return None;
    }
    let base = old.id.split("-s").next().unwrap_or(&old.id).to_string();
    let segment = old.segment + 1;
    let id = format!("{base}-s{segment}");
    let Some((recorder, conn)) = crate::recorder::assign(app, &id, room) else {
        tracing::warn!(%room, recording = %old.id, "no recorder free to continue the recording");
        // Its old segment is already finished and freed.
        let reason = if old.bridge == bridge {
            RecordingStopReason::RecorderLost
        } else {
            RecordingStopReason::BridgeLost
        };
        stop_without_cleanup(&mut r, reason);
        return None;
    };
    let next =
        Recording { endpoint: format!("rec-{id}"), id, segment, recorder, conn, bridge, ..old.clone() };
    tracing::info!(%room, recording = %next.id, recorder = %next.recorder, bridge = %next.bridge, "continuing the recording");
    r.recording = Some(next.clone());
    Some(next)
}

/// The room's bridge, once it has one again (within [`CONTINUE_WITHIN`]).
async fn bridge_of(app: &App, room: &str) -> Option<String> {
    let deadline = tokio::time::Instant::now() + CONTINUE_WITHIN;
    loop {
        let handle = app.room(room)?;
        let bridge = lock(&handle).bridge.clone();
        if bridge.is_some() || tokio::time::Instant::now() >= deadline {
            return bridge;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the room says that the recording keeps: its people on every change, its public chat.
/// Called by [`Room::broadcast`] with each message it sends.
pub fn observe(r: &Room, msg: &ServerMsg) {
    let Some(rec) = r.recording.as_ref().filter(|x| x.running) else { return };
    match msg {
        ServerMsg::ParticipantJoined { .. }
        | ServerMsg::ParticipantLeft { .. }
        | ServerMsg::ParticipantUpdated { .. } => send_participants(rec, r),
        ServerMsg::Chat { from, name, text, private: false, .. } => {
            rec.conn.send(&ToRecorder::Chat {
                recording: rec.id.clone(),
                from: from.clone(),
                name: name.clone(),
                text: text.clone(),
                wall_ms: wall_ms(),
            });
        }
        _ => {}
    }
}

fn send_participants(rec: &Recording, r: &Room) {
    let participants = r
        .list()
        .into_iter()
        .map(|p| RecordedParticipant {
            id: p.id,
            name: p.name,
            audio_muted: p.audio_muted,
            video_muted: p.video_muted,
            screen: p.screen,
        })
        .collect();
    rec.conn.send(&ToRecorder::Participants { recording: rec.id.clone(), participants });
}

/// A recorder's `finished` for segment `id` of `room`: a failure during the recording stops it
/// with why; a failed upload (after the stop) reaches the room's moderators, naming where the
/// files are kept.
pub fn finished(app: &Arc<App>, room: &str, id: &str, location: &str, error: &recorder::Failure) {
    let reason = match error.code {
        recorder::ErrorCode::Storage => RecordingStopReason::StorageFailed,
        recorder::ErrorCode::Upload => {
            let Some(handle) = app.room(room) else { return };
            let r = lock(&handle);
            let msg = format!(
                "the recording's upload failed ({}); its files are kept at {location}",
                error.message
            );
            let msg = ServerMsg::error(ErrorCode::RecordingUploadFailed, msg);
            for p in r.participants.values().filter(|p| p.info.moderator) {
                let _ = p.tx.send(msg.clone());
            }
            return;
        }
        _ => RecordingStopReason::RecorderFailed,
    };
    ended(app, room, id, reason);
}

/// The recorder finishes (its files are complete once it replies), then the hidden endpoint
/// is freed and the recorder's place with it. Harmless on a recording either never heard of.
async fn cleanup(app: Arc<App>, rec: Recording) {
    end_segment(app, rec, false).await
}

/// [`cleanup`]; `handoff`: the recording goes on in a next segment, so this one's recorder
/// composes nothing (the last segment's composes the whole recording).
async fn end_segment(app: Arc<App>, rec: Recording, handoff: bool) {
    if let Some(c) = crate::recorder::conn(&app, &rec.recorder) {
        c.request(ToRecorder::Stop { id: app.next_id(), recording: rec.id.clone(), handoff }).await;
    }
    crate::recorder::release(&app, &rec.recorder, &rec.id);
    if rec.bridge.is_empty() {
        return;
    }
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
