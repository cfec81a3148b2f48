//! In-process recording tests: a moderator's `set_recording` against the real router, with a
//! fake bridge (hidden endpoints, the slot offer) and fake recorders on `/recorder`.
use std::time::Duration;

use convene_proto::control::{self, FromBridge, SlotInfo, SlotMedia, SlotSource, SourceKind, ToBridge};
use convene_proto::recorder::{self, FromRecorder, ToRecorder};
use futures_util::SinkExt;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use crate::focus_tests::{Ws, bridge, next_control, server};
use crate::room_tests::{error, join, next, none_of, send};

fn slot(mid: &str, endpoint: &str) -> SlotInfo {
    SlotInfo {
        mid: mid.into(),
        media: SlotMedia::Audio,
        source: Some(SlotSource {
            endpoint: endpoint.into(),
            name: format!("{endpoint}-a0"),
            kind: SourceKind::Audio,
        }),
    }
}

/// A bridge answering everything; a hidden endpoint's offer is followed by the bridge's own
/// slot offer and a slots update. Every request it gets goes to `seen`.
async fn fake_bridge(addr: &str, seen: mpsc::UnboundedSender<ToBridge>) {
    let mut b = bridge(addr, "b1", "s3cret").await.unwrap();
    tokio::spawn(async move {
        loop {
            let m = next_control(&mut b).await;
            let _ = seen.send(m.clone());
            let mut out = vec![];
            match m {
                ToBridge::AllocateEndpoint { id, conference, endpoint }
                | ToBridge::AllocateHiddenEndpoint { id, conference, endpoint } => {
                    out.push(FromBridge::Allocated {
                        id,
                        conference,
                        endpoint,
                        candidates: vec!["cand".into()],
                        ice_lite: true,
                    })
                }
                ToBridge::Offer { id, conference, endpoint, .. } => {
                    out.push(FromBridge::Answer {
                        id,
                        conference: conference.clone(),
                        endpoint: endpoint.clone(),
                        sdp: "answer-sdp".into(),
                    });
                    if endpoint.starts_with("rec-") {
                        out.push(FromBridge::Offer {
                            offer_id: 77,
                            conference: conference.clone(),
                            endpoint: endpoint.clone(),
                            sdp: "slots-sdp".into(),
                            slots: vec![slot("1", "ann")],
                        });
                        out.push(FromBridge::Slots {
                            conference: conference.clone(),
                            endpoint: endpoint.clone(),
                            slots: vec![slot("1", "bob")],
                        });
                        out.push(FromBridge::EndpointState {
                            conference,
                            endpoint,
                            state: control::EndpointState::Connected,
                        });
                    }
                }
                ToBridge::ExpireEndpoint { id, .. } => out.push(FromBridge::Ok { id }),
                _ => {}
            }
            for m in out {
                if b.send(tungstenite::Message::text(control::to_json(&m))).await.is_err() {
                    return;
                }
            }
        }
    });
}

async fn recorder_ws(addr: &str, id: &str, capacity: u32) -> Ws {
    let mut req = format!("ws://{addr}/recorder").into_client_request().unwrap();
    req.headers_mut().insert("authorization", "Bearer s3cret".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let reg = FromRecorder::Register {
        protocol_version: recorder::PROTOCOL_VERSION,
        recorder_id: id.into(),
        version: "test".into(),
        capacity,
        active: 0,
        draining: false,
        video_height: 240,
    };
    ws.send(tungstenite::Message::text(recorder::to_json(&reg))).await.unwrap();
    ws
}

/// The next message for the recorder that is not about the room's people or chat.
async fn next_to_recorder(ws: &mut Ws) -> ToRecorder {
    loop {
        let m = next_any_to_recorder(ws).await;
        if !matches!(m, ToRecorder::Participants { .. } | ToRecorder::Chat { .. }) {
            return m;
        }
    }
}

async fn next_any_to_recorder(ws: &mut Ws) -> ToRecorder {
    serde_json::from_value(crate::focus_tests::next_json(ws).await).expect("a recorder-control message")
}

/// The next `participants` (or `chat`, with `chat`) message for the recorder.
async fn next_room_event(ws: &mut Ws, chat: bool) -> ToRecorder {
    loop {
        let m = next_any_to_recorder(ws).await;
        match m {
            ToRecorder::Participants { .. } if !chat => return m,
            ToRecorder::Chat { .. } if chat => return m,
            _ => {}
        }
    }
}

/// The recorder's participant lists until one satisfies `f`.
async fn participants_until(
    ws: &mut Ws,
    f: impl Fn(&[recorder::RecordedParticipant]) -> bool,
) -> Vec<recorder::RecordedParticipant> {
    loop {
        if let ToRecorder::Participants { participants, .. } = next_room_event(ws, false).await
            && f(&participants)
        {
            return participants;
        }
    }
}

/// Start `recording` on a fake recorder: its offer, then the bridge's answer and slot offer.
async fn accept_start(rec: &mut Ws) -> (String, u32, Option<recorder::Continuation>) {
    let ToRecorder::Start { id, recording, segment, continues, .. } = next_to_recorder(rec).await else {
        panic!("expected start")
    };
    reply(rec, FromRecorder::Offer { id, recording: recording.clone(), sdp: "o".into() }).await;
    (recording, segment, continues)
}

async fn reply(ws: &mut Ws, m: FromRecorder) {
    ws.send(tungstenite::Message::text(recorder::to_json(&m))).await.unwrap();
}

/// Until the bridge sees a request matching `f`.
async fn bridge_saw(rx: &mut mpsc::UnboundedReceiver<ToBridge>, f: impl Fn(&ToBridge) -> bool) -> ToBridge {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("timeout").unwrap();
        if f(&m) {
            return m;
        }
    }
}

#[tokio::test]
async fn set_recording_starts_relays_and_stops_a_recorder() {
    let (addr, _app) = server().await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    fake_bridge(&addr, seen_tx).await;
    let (mut host, _) = join(&addr, "rec", "Host").await;
    next(&mut host, "media").await;

    // No recorder registered: a typed refusal, nothing changes.
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    assert_eq!(error(&mut host).await, "no_recorder");

    let mut rec = recorder_ws(&addr, "r1", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    let ToRecorder::Start { id, recording, conference, endpoint, candidates, .. } =
        next_to_recorder(&mut rec).await
    else {
        panic!("expected start")
    };
    assert_eq!((conference.as_str(), candidates), ("rec", vec!["cand".to_string()]));
    let hidden = bridge_saw(&mut seen, |m| matches!(m, ToBridge::AllocateHiddenEndpoint { .. })).await;
    assert!(matches!(hidden, ToBridge::AllocateHiddenEndpoint { endpoint: ref e, .. } if *e == endpoint));
    // The recorder's camera height, before its offer.
    let c = bridge_saw(&mut seen, |m| matches!(m, ToBridge::ReceiverConstraints { .. })).await;
    assert!(
        matches!(c, ToBridge::ReceiverConstraints { ref constraints, .. } if constraints.default_max_height == 240)
    );
    reply(&mut rec, FromRecorder::Offer { id, recording: recording.clone(), sdp: "rec-offer".into() }).await;
    let offer = bridge_saw(&mut seen, |m| matches!(m, ToBridge::Offer { .. })).await;
    assert!(
        matches!(offer, ToBridge::Offer { sdp: ref s, endpoint: ref e, .. } if s == "rec-offer" && *e == endpoint)
    );
    // The bridge's answer, its slot offer and a slots update reach the recorder, in order.
    assert_eq!(
        next_to_recorder(&mut rec).await,
        ToRecorder::Answer { recording: recording.clone(), sdp: "answer-sdp".into() }
    );
    let ToRecorder::Offer { offer_id: 77, slots, .. } = next_to_recorder(&mut rec).await else {
        panic!("offer")
    };
    assert_eq!(slots, vec![slot("1", "ann")]);
    reply(
        &mut rec,
        FromRecorder::Answer { recording: recording.clone(), offer_id: 77, sdp: "rec-answer".into() },
    )
    .await;
    let a = bridge_saw(&mut seen, |m| matches!(m, ToBridge::Answer { .. })).await;
    assert_eq!(
        a,
        ToBridge::Answer {
            offer_id: 77,
            conference: "rec".into(),
            endpoint: endpoint.clone(),
            sdp: "rec-answer".into()
        }
    );
    assert_eq!(
        next_to_recorder(&mut rec).await,
        ToRecorder::Slots { recording: recording.clone(), slots: vec![slot("1", "bob")] }
    );

    let room = loop {
        let r = next(&mut host, "room").await;
        if r["room"]["recording"] == true {
            break r;
        }
    };
    assert_eq!(room["room"]["recording_by"], "Host");
    // A late joiner sees it, and never the recorder.
    let (mut late, _) = join(&addr, "rec", "Late").await;
    // (`join` consumed `joined`; its room info is checked through a fresh room broadcast.)
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    let r = next(&mut late, "room").await;
    assert_eq!(
        (r["room"]["recording"].clone(), r["room"]["recording_by"].clone()),
        (json!(true), json!("Host"))
    );

    // The only recorder is busy: a second room gets no_recorder.
    let (mut other, _) = join(&addr, "rec2", "Other").await;
    next(&mut other, "media").await;
    send(&mut other, json!({"type": "set_recording", "recording": true})).await;
    assert_eq!(error(&mut other).await, "no_recorder");

    // Stop: everyone is told who stopped it; the recorder finishes, then the endpoint goes.
    send(&mut host, json!({"type": "set_recording", "recording": false})).await;
    let stopped = next(&mut late, "recording_stopped").await;
    assert_eq!((stopped["by"].clone(), stopped["reason"].clone()), (json!("Host"), json!("stopped")));
    assert_eq!(next(&mut late, "room").await["room"]["recording"], false);
    let ToRecorder::Stop { id, recording: r, handoff: false } = next_to_recorder(&mut rec).await else {
        panic!("stop")
    };
    assert_eq!(r, recording);
    reply(&mut rec, FromRecorder::Ok { id }).await;
    let e = bridge_saw(&mut seen, |m| matches!(m, ToBridge::ExpireEndpoint { .. })).await;
    assert!(matches!(e, ToBridge::ExpireEndpoint { endpoint: ref x, .. } if *x == endpoint));
    for ws in [&mut host, &mut late] {
        none_of(ws, "connection_state").await;
    }

    // Its place is free again; the recorder's socket closing mid-recording stops it with a reason.
    reply(
        &mut rec,
        FromRecorder::Finished {
            recording,
            conference: String::new(),
            location: "/x".into(),
            files: 1,
            error: None,
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    let ToRecorder::Start { id, recording, .. } = next_to_recorder(&mut rec).await else { panic!("start") };
    reply(&mut rec, FromRecorder::Offer { id, recording, sdp: "o".into() }).await;
    loop {
        if next(&mut late, "room").await["room"]["recording"] == true {
            break;
        }
    }
    drop(rec);
    let stopped = next(&mut late, "recording_stopped").await;
    assert_eq!(stopped["reason"], "recorder_lost");
    assert!(stopped.get("by").is_none());
}

#[tokio::test]
async fn the_recorder_hears_who_is_there_and_the_public_chat_and_a_lost_recorder_is_replaced() {
    let (addr, _app) = server().await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    fake_bridge(&addr, seen_tx).await;
    let (mut host, host_id) = join(&addr, "room", "Host").await;
    next(&mut host, "media").await;
    let mut r1 = recorder_ws(&addr, "r1", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    let (recording, segment, continues) = accept_start(&mut r1).await;
    assert_eq!((segment, continues), (1, None));
    // Once it runs: the whole list, names and media state.
    let ToRecorder::Participants { recording: r, participants } = next_room_event(&mut r1, false).await
    else {
        unreachable!()
    };
    assert_eq!(r, recording);
    assert_eq!(participants.len(), 1);
    assert_eq!((participants[0].id.as_str(), participants[0].name.as_str()), (host_id.as_str(), "Host"));

    let (mut bob, bob_id) = join(&addr, "room", "Bob").await;
    next(&mut bob, "media").await;
    let participants = participants_until(&mut r1, |l| l.len() == 2).await;
    assert_eq!(participants.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Host", "Bob"]);
    send(&mut bob, json!({"type": "media_state", "audio_muted": true, "screen": true})).await;
    let participants = participants_until(&mut r1, |l| l.iter().any(|p| p.id == bob_id && p.screen)).await;
    let b = participants.iter().find(|p| p.id == bob_id).unwrap();
    assert!(b.audio_muted && b.screen && !b.video_muted, "{b:?}");

    // Public chat is recorded, private chat never.
    send(&mut bob, json!({"type": "chat", "text": "just for you", "to": host_id})).await;
    send(&mut bob, json!({"type": "chat", "text": "hello all"})).await;
    let ToRecorder::Chat { from, name, text, .. } = next_room_event(&mut r1, true).await else {
        unreachable!()
    };
    assert_eq!((from, name.as_str(), text.as_str()), (bob_id.clone(), "Bob", "hello all"));

    // The recorder dies: a second one continues the recording as segment 2 within 5 s, and
    // the room never hears it stopped.
    let mut r2 = recorder_ws(&addr, "r2", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lost_at = std::time::Instant::now();
    drop(r1);
    let (next_id, segment, continues) = tokio::time::timeout(Duration::from_secs(5), accept_start(&mut r2))
        .await
        .expect("a replacement within 5 s");
    eprintln!("replacement recorder started {:?} after the loss", lost_at.elapsed());
    assert_eq!(segment, 2);
    assert_eq!(continues.map(|c| c.reason), Some(recorder::Interruption::RecorderLost));
    assert!(next_id.starts_with(&recording) && next_id != recording, "{next_id} continues {recording}");
    let hidden = bridge_saw(
        &mut seen,
        |m| matches!(m, ToBridge::AllocateHiddenEndpoint { endpoint, .. } if endpoint.contains(&next_id)),
    )
    .await;
    assert!(matches!(hidden, ToBridge::AllocateHiddenEndpoint { .. }));
    let participants = participants_until(&mut r2, |_| true).await;
    assert_eq!(participants.len(), 2, "the new segment knows who is there");
    none_of(&mut bob, "recording_stopped").await;

    // A moderator's stop now stops the second recorder's segment.
    send(&mut host, json!({"type": "set_recording", "recording": false})).await;
    let r = loop {
        // (after the bridge's answer and slot offer of segment 2)
        if let ToRecorder::Stop { recording, handoff, .. } = next_to_recorder(&mut r2).await {
            assert!(!handoff, "the moderator's stop ends the recording: its last segment composes it");
            break recording;
        }
    };
    assert_eq!(r, next_id);
    let stopped = next(&mut bob, "recording_stopped").await;
    assert_eq!(stopped["reason"], "stopped");
}

#[tokio::test]
async fn a_recording_its_recorder_ends_on_its_own_continues_on_another() {
    let (addr, _app) = server().await;
    let (seen_tx, _seen) = mpsc::unbounded_channel();
    fake_bridge(&addr, seen_tx).await;
    let (mut host, _) = join(&addr, "room", "Host").await;
    next(&mut host, "media").await;
    let mut r1 = recorder_ws(&addr, "r1", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    let (recording, _, _) = accept_start(&mut r1).await;
    participants_until(&mut r1, |_| true).await;
    // r1 shuts down (a pod's SIGTERM): it drains, finishes the recording cleanly and says so.
    let mut r2 = recorder_ws(&addr, "r2", 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    reply(&mut r1, FromRecorder::Status { active: 0, draining: true }).await;
    let finished = FromRecorder::Finished {
        recording: recording.clone(),
        conference: "room".into(),
        location: "/x".into(),
        files: 2,
        error: None,
    };
    reply(&mut r1, finished).await;
    // Signaling ends the old segment first (the recorder no longer knows it), as a handoff:
    // the recording goes on, so that segment is not composed on its own.
    let id = loop {
        if let ToRecorder::Stop { id, handoff, .. } = next_to_recorder(&mut r1).await {
            assert!(handoff, "an interrupted segment is handed on");
            break id;
        }
    };
    reply(&mut r1, FromRecorder::error(Some(id), recorder::ErrorCode::UnknownRecording, "no such recording"))
        .await;
    let (next_id, segment, continues) = accept_start(&mut r2).await;
    assert_eq!((segment, continues.map(|c| c.reason)), (2, Some(recorder::Interruption::RecorderLost)));
    assert!(next_id.starts_with(&recording));
    none_of(&mut host, "recording_stopped").await;
}

/// The registry holds at most `MAX_RECORDERS`: one more is refused with a reason, while a
/// recorder already known may still register again (it lost its connection).
#[tokio::test]
async fn registered_recorders_are_bounded() {
    use crate::recorder::{MAX_RECORDERS, RegisteredRecorder};
    let (addr, app) = server().await;
    let _r0 = recorder_ws(&addr, "r0", 1).await;
    let registered = |n: usize| {
        let app = app.clone();
        async move {
            for _ in 0..100 {
                if app.lock().recorders.len() == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("never {n} recorders registered");
        }
    };
    registered(1).await;
    // What MAX_RECORDERS - 1 more registrations leave behind (sockets for each would only
    // test the file-descriptor limit).
    {
        let mut inner = app.lock();
        let conn = inner.recorders["r0"].conn.clone();
        for i in 1..MAX_RECORDERS {
            let id = format!("r{i}");
            let r = RegisteredRecorder {
                id: id.clone(),
                version: "test".into(),
                capacity: 1,
                active: 0,
                draining: false,
                video_height: 240,
                conn: conn.clone(),
                recordings: Default::default(),
            };
            inner.recorders.insert(id, r);
        }
    }
    let mut extra = recorder_ws(&addr, "one-too-many", 1).await;
    let refusal: FromRecorder =
        serde_json::from_value(crate::focus_tests::next_json(&mut extra).await).unwrap();
    let FromRecorder::Error { message, .. } = refusal else { panic!("expected a refusal, got {refusal:?}") };
    assert_eq!(message, "too many recorders registered");
    assert!(!app.lock().recorders.contains_key("one-too-many"));
    // A known one comes back (its old connection is replaced): not refused, within the bound.
    let mut again = recorder_ws(&addr, "r7", 1).await;
    let said =
        tokio::time::timeout(Duration::from_millis(300), crate::focus_tests::next_json(&mut again)).await;
    assert!(said.is_err(), "a known recorder was told {said:?}");
    let inner = app.lock();
    assert!(inner.recorders.contains_key("r7") && inner.recorders.len() <= MAX_RECORDERS);
}
