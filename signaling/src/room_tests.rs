//! In-process room tests: lobby, password, moderation and chat over real WebSockets against
//! the real router, with a fake bridge that answers every allocation (helpers in
//! `focus_tests`).
use std::time::Duration;

use convene_proto::control::{self, FromBridge, ToBridge};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::focus_tests::{Ws, bridge, next_control, next_json, server};

/// A fake bridge answering every allocation and offer, in the background.
pub async fn auto_bridge(addr: &str) {
    let mut b = bridge(addr, "b1", "s3cret").await.unwrap();
    tokio::spawn(async move {
        loop {
            let reply = match next_control(&mut b).await {
                ToBridge::AllocateEndpoint { id, conference, endpoint } => {
                    FromBridge::Allocated { id, conference, endpoint, candidates: vec![], ice_lite: true }
                }
                ToBridge::Offer { id, conference, endpoint, .. } => {
                    FromBridge::Answer { id, conference, endpoint, sdp: "answer-sdp".into() }
                }
                _ => continue,
            };
            if b.send(tungstenite::Message::text(control::to_json(&reply))).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
}

pub async fn connect(addr: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap().0
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(tungstenite::Message::text(v.to_string())).await.unwrap();
}

/// The next frame of type `ty`, skipping presence and media noise.
pub async fn next(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == ty {
            return v;
        }
        assert!(v["type"] != "error" || ty == "error", "unexpected {v}");
    }
}

pub async fn error(ws: &mut Ws) -> String {
    next(ws, "error").await["code"].as_str().unwrap().to_string()
}

/// Join and wait for `joined`; returns the socket and our participant id.
pub async fn join(addr: &str, room: &str, name: &str) -> (Ws, String) {
    let mut ws = connect(addr).await;
    send(&mut ws, json!({"type": "join", "v": 2, "room": room, "name": name})).await;
    let j = next(&mut ws, "joined").await;
    (ws, j["you"]["id"].as_str().unwrap().to_string())
}

/// Nothing of type `ty` arrives within a short while (other frames are skipped).
pub async fn none_of(ws: &mut Ws, ty: &str) {
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            let v = next_json(ws).await;
            assert!(v["type"] != ty, "unexpected {v}");
        }
    })
    .await;
}

/// The socket is closed by the server (after `kicked` / `lobby_denied`).
pub async fn closed(ws: &mut Ws) {
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    });
    end.await.expect("socket stays open");
}

#[tokio::test]
async fn lobby_knock_admit_deny() {
    let (addr, app) = server().await;
    auto_bridge(&addr).await;
    let (mut host, _) = join(&addr, "lobby", "Host").await;
    send(&mut host, json!({"type": "set_lobby", "enabled": true})).await;
    assert_eq!(next(&mut host, "room").await["room"]["lobby"], true);

    // Knock: the newcomer waits, the moderator sees the list; waiting is not joined.
    let mut ann = connect(&addr).await;
    send(&mut ann, json!({"type": "join", "v": 2, "room": "lobby", "name": "Ann"})).await;
    next(&mut ann, "lobby_waiting").await;
    let list = next(&mut host, "lobby").await;
    assert_eq!(list["waiting"][0]["name"], "Ann");
    let ann_id = list["waiting"][0]["id"].as_str().unwrap().to_string();
    send(&mut ann, json!({"type": "chat", "text": "let me in"})).await;
    assert_eq!(error(&mut ann).await, "not_joined");
    assert!(app.metrics.render().contains("convene_signaling_lobby_waiting 1"));

    // Admit: joined with the host listed; the host sees them join and the list empty.
    send(&mut host, json!({"type": "lobby_admit", "id": ann_id})).await;
    let joined = next(&mut ann, "joined").await;
    assert_eq!(joined["participants"][0]["name"], "Host");
    assert_eq!(next(&mut host, "participant_joined").await["participant"]["id"], ann_id.as_str());
    assert_eq!(next(&mut host, "lobby").await["waiting"], json!([]));
    next(&mut ann, "media").await;

    // Only moderators admit; unknown ids are refused.
    send(&mut ann, json!({"type": "lobby_admit", "id": "nobody"})).await;
    assert_eq!(error(&mut ann).await, "not_moderator");
    send(&mut host, json!({"type": "lobby_deny", "id": "nobody"})).await;
    assert_eq!(error(&mut host).await, "unknown_participant");

    // Deny: told, then the socket closes.
    let mut bob = connect(&addr).await;
    send(&mut bob, json!({"type": "join", "v": 2, "room": "lobby", "name": "Bob"})).await;
    next(&mut bob, "lobby_waiting").await;
    let bob_id = next(&mut host, "lobby").await["waiting"][0]["id"].as_str().unwrap().to_string();
    send(&mut host, json!({"type": "lobby_deny", "id": bob_id})).await;
    next(&mut bob, "lobby_denied").await;
    closed(&mut bob).await;
    assert_eq!(next(&mut host, "lobby").await["waiting"], json!([]));

    // Turning the lobby off admits everyone waiting.
    let mut cy = connect(&addr).await;
    send(&mut cy, json!({"type": "join", "v": 2, "room": "lobby", "name": "Cy"})).await;
    next(&mut cy, "lobby_waiting").await;
    next(&mut host, "lobby").await;
    send(&mut host, json!({"type": "set_lobby", "enabled": false})).await;
    assert_eq!(next(&mut cy, "joined").await["room"]["lobby"], false);
    next(&mut cy, "media").await;
    assert!(app.metrics.render().contains("convene_signaling_lobby_waiting 0"));
}

#[tokio::test]
async fn room_password() {
    let (addr, _app) = server().await;
    auto_bridge(&addr).await;
    let (mut host, _) = join(&addr, "locked", "Host").await;
    send(&mut host, json!({"type": "set_password", "password": "hunter2"})).await;
    assert_eq!(next(&mut host, "room").await["room"]["locked"], true);

    // The same socket may try again after a refusal.
    let mut ann = connect(&addr).await;
    send(&mut ann, json!({"type": "join", "v": 2, "room": "locked", "name": "Ann"})).await;
    assert_eq!(error(&mut ann).await, "password_required");
    send(&mut ann, json!({"type": "join", "v": 2, "room": "locked", "name": "Ann", "password": "nope"}))
        .await;
    assert_eq!(error(&mut ann).await, "wrong_password");
    send(&mut ann, json!({"type": "join", "v": 2, "room": "locked", "name": "Ann", "password": "hunter2"}))
        .await;
    assert_eq!(next(&mut ann, "joined").await["room"]["locked"], true);

    // Only moderators lock; an empty password unlocks.
    send(&mut ann, json!({"type": "set_password", "password": "mine"})).await;
    assert_eq!(error(&mut ann).await, "not_moderator");
    send(&mut host, json!({"type": "set_password", "password": ""})).await;
    assert_eq!(next(&mut ann, "room").await["room"]["locked"], false);
    let (_bob, _) = join(&addr, "locked", "Bob").await;
}

#[tokio::test]
async fn moderation_mute_kick_grant() {
    let (addr, app) = server().await;
    auto_bridge(&addr).await;
    let (mut host, _) = join(&addr, "mod", "Host").await;
    let (mut ann, ann_id) = join(&addr, "mod", "Ann").await;
    let (mut bob, bob_id) = join(&addr, "mod", "Bob").await;

    send(&mut ann, json!({"type": "mute", "target": bob_id})).await;
    assert_eq!(error(&mut ann).await, "not_moderator");
    send(&mut ann, json!({"type": "kick", "target": bob_id})).await;
    assert_eq!(error(&mut ann).await, "not_moderator");

    // Mute one: the target is told; everyone sees the new state.
    send(&mut host, json!({"type": "mute", "target": bob_id, "kind": "audio"})).await;
    assert_eq!(next(&mut bob, "muted_by").await, json!({"type": "muted_by", "by": "Host", "kind": "audio"}));
    let upd = next(&mut ann, "participant_updated").await;
    assert_eq!(
        (upd["participant"]["id"].as_str(), &upd["participant"]["audio_muted"]),
        (Some(bob_id.as_str()), &json!(true))
    );
    send(&mut host, json!({"type": "mute", "target": "nobody"})).await;
    assert_eq!(error(&mut host).await, "unknown_participant");

    // Mute all: everyone but the sender.
    send(&mut host, json!({"type": "mute_all", "kind": "video"})).await;
    assert_eq!(next(&mut ann, "muted_by").await["kind"], "video");
    assert_eq!(next(&mut bob, "muted_by").await["kind"], "video");
    none_of(&mut host, "muted_by").await;

    // Grant moderator: Ann may now kick; Bob is told and disconnected; the others see him go.
    send(&mut host, json!({"type": "grant_moderator", "target": ann_id})).await;
    loop {
        let upd = next(&mut ann, "participant_updated").await;
        if upd["participant"]["id"] == ann_id.as_str() && upd["participant"]["moderator"] == true {
            break;
        }
    }
    send(&mut ann, json!({"type": "kick", "target": bob_id})).await;
    assert_eq!(next(&mut bob, "kicked").await["by"], "Ann");
    closed(&mut bob).await;
    assert_eq!(next(&mut host, "participant_left").await["id"], bob_id.as_str());
    assert_eq!(next(&mut ann, "participant_left").await["id"], bob_id.as_str());
    send(&mut ann, json!({"type": "kick", "target": bob_id})).await;
    assert_eq!(error(&mut ann).await, "unknown_participant");

    // Recording is a moderator's (and needs a recorder: recording_tests).
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    assert_eq!(error(&mut host).await, "no_recorder");
    assert!(app.metrics.render().contains("convene_signaling_participants 2"));
}

#[tokio::test]
async fn chat_room_and_private() {
    let (addr, _app) = server().await;
    auto_bridge(&addr).await;
    let (mut ann, ann_id) = join(&addr, "chat", "Ann").await;
    let (mut bob, bob_id) = join(&addr, "chat", "Bob").await;
    let (mut cy, cy_id) = join(&addr, "chat", "Cy").await;

    send(&mut ann, json!({"type": "chat", "text": "hello all"})).await;
    for ws in [&mut ann, &mut bob, &mut cy] {
        let c = next(ws, "chat").await;
        assert_eq!(
            (c["from"].as_str(), c["name"].as_str(), c["text"].as_str()),
            (Some(ann_id.as_str()), Some("Ann"), Some("hello all"))
        );
        assert_eq!((&c["private"], &c["to"]), (&json!(false), &Value::Null));
    }

    // Private: the recipient and a copy for the sender; nobody else.
    send(&mut bob, json!({"type": "chat", "text": "psst", "to": cy_id})).await;
    for ws in [&mut cy, &mut bob] {
        let c = next(ws, "chat").await;
        assert_eq!(
            (c["from"].as_str(), c["text"].as_str(), &c["private"]),
            (Some(bob_id.as_str()), Some("psst"), &json!(true))
        );
        assert_eq!(c["to"], cy_id.as_str());
    }
    send(&mut cy, json!({"type": "chat", "text": "after"})).await;
    assert_eq!(next(&mut ann, "chat").await["text"], "after");

    // Unknown recipient refused; blank text ignored; 4096 characters pass (over-long chat is
    // refused: `limits_tests::over_long_chat_is_refused`).
    send(&mut bob, json!({"type": "chat", "text": "x", "to": "nobody"})).await;
    assert_eq!(error(&mut bob).await, "unknown_participant");
    send(&mut bob, json!({"type": "chat", "text": "   "})).await;
    send(&mut bob, json!({"type": "chat", "text": "é".repeat(4096)})).await;
    assert_eq!(next(&mut ann, "chat").await["text"].as_str().unwrap().chars().count(), 4096);
}

#[tokio::test]
async fn moderator_promoted_and_rooms_cleaned_up() {
    let (addr, app) = server().await;
    auto_bridge(&addr).await;
    let (host, _) = join(&addr, "promo", "Host").await;
    let (mut ann, ann_id) = join(&addr, "promo", "Ann").await;
    drop(host);
    let upd = next(&mut ann, "participant_updated").await;
    assert_eq!(
        (upd["participant"]["id"].as_str(), &upd["participant"]["moderator"]),
        (Some(ann_id.as_str()), &json!(true))
    );

    // Many rooms joined and left concurrently: every room is gone afterwards.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let room = format!("r{}", i % 8);
            let (mut ws, _) = join(&addr, &room, "P").await;
            send(&mut ws, json!({"type": "chat", "text": "hi"})).await;
            next(&mut ws, "chat").await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(ann);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = app.metrics.render();
            if m.contains("convene_signaling_rooms 0") && m.contains("convene_signaling_participants 0") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("rooms and participants back to zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_room_does_not_hold_up_another() {
    let (addr, app) = server().await;
    auto_bridge(&addr).await;
    let (mut a, _) = join(&addr, "busy", "A").await;
    next(&mut a, "media").await;
    // Hold the busy room's lock for a while, as a long fan-out would.
    let busy = app.room("busy").unwrap();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let _guard = crate::state::lock(&busy);
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    locked_rx.recv().unwrap();
    let t = std::time::Instant::now();
    let (mut b, _) = join(&addr, "free", "B").await;
    send(&mut b, json!({"type": "chat", "text": "still here"})).await;
    next(&mut b, "chat").await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    holder.join().unwrap();
}

#[tokio::test]
async fn reactions_rate_limited_and_end_meeting_for_all() {
    let (addr, app) = server().await;
    auto_bridge(&addr).await;
    let (mut host, host_id) = join(&addr, "react", "Host").await;
    let (mut ann, _) = join(&addr, "react", "Ann").await;

    // Everyone, the sender included, sees a reaction; unknown ones are refused.
    send(&mut host, json!({"type": "reaction", "reaction": "clap"})).await;
    let r = next(&mut ann, "reaction").await;
    assert_eq!(r, json!({"type": "reaction", "from": host_id, "reaction": "clap"}));
    assert_eq!(next(&mut host, "reaction").await["reaction"], "clap");
    send(&mut host, json!({"type": "reaction", "reaction": "<script>"})).await;
    assert_eq!(error(&mut host).await, "bad_request");

    // A flood: the burst passes (4 tokens left after the first), the rest are dropped.
    for _ in 0..20 {
        send(&mut host, json!({"type": "reaction", "reaction": "party"})).await;
    }
    let mut n = 0;
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            if next_json(&mut ann).await["type"] == "reaction" {
                n += 1;
            }
        }
    })
    .await;
    assert!((4..=5).contains(&n), "{n} reactions passed the limit");

    // Only a moderator ends the meeting; then everyone is told and disconnected.
    send(&mut ann, json!({"type": "end_meeting"})).await;
    assert_eq!(error(&mut ann).await, "not_moderator");
    send(&mut host, json!({"type": "end_meeting"})).await;
    for ws in [&mut ann, &mut host] {
        assert_eq!(next(ws, "meeting_ended").await["by"], "Host");
        closed(ws).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(app.metrics.render().contains("convene_signaling_rooms 0"));
}

#[tokio::test]
async fn raised_hands_queue_in_the_order_they_went_up_for_late_joiners_too() {
    let (addr, _app) = server().await;
    auto_bridge(&addr).await;
    let (mut a, a_id) = join(&addr, "hands", "Ann").await;
    let (mut b, b_id) = join(&addr, "hands", "Bob").await;
    let (mut c, c_id) = join(&addr, "hands", "Cid").await;
    // Cid, then Ann, then Bob raise; Cid lowers and raises again: to the back of the queue.
    for ws in [&mut c, &mut a, &mut b] {
        send(ws, json!({"type": "raise_hand", "raised": true})).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    send(&mut c, json!({"type": "raise_hand", "raised": true})).await; // already up: no change
    send(&mut c, json!({"type": "raise_hand", "raised": false})).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    send(&mut c, json!({"type": "raise_hand", "raised": true})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A late joiner gets the queue from the participant list alone.
    let mut late = connect(&addr).await;
    send(&mut late, json!({"type": "join", "v": 2, "room": "hands", "name": "Late"})).await;
    let joined = next(&mut late, "joined").await;
    let mut hands: Vec<(u64, String)> = joined["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["hand_raised"] == true)
        .map(|p| {
            (p["hand_order"].as_u64().expect("a raised hand has its place"), p["id"].as_str().unwrap().into())
        })
        .collect();
    hands.sort();
    let queue: Vec<String> = hands.into_iter().map(|(_, id)| id).collect();
    assert_eq!(queue, [a_id, b_id, c_id], "Ann, Bob, then Cid who raised again");
    assert!(joined["you"].get("hand_order").is_none(), "no place while the hand is down: {}", joined["you"]);
}

#[tokio::test]
async fn e2ee_room_flag_and_recording_refused() {
    let (addr, _app) = server().await;
    auto_bridge(&addr).await;
    let (mut host, _) = join(&addr, "secret", "Host").await;
    let (mut ann, _) = join(&addr, "secret", "Ann").await;
    // Only moderators turn it on; everyone is told.
    send(&mut ann, json!({"type": "set_e2ee", "enabled": true})).await;
    assert_eq!(error(&mut ann).await, "not_moderator");
    send(&mut host, json!({"type": "set_e2ee", "enabled": true})).await;
    assert_eq!(next(&mut host, "room").await["room"]["e2ee"], true);
    assert_eq!(next(&mut ann, "room").await["room"]["e2ee"], true);
    // A late joiner learns it from `joined`.
    let mut bob = connect(&addr).await;
    send(&mut bob, json!({"type": "join", "v": 2, "room": "secret", "name": "Bob"})).await;
    assert_eq!(next(&mut bob, "joined").await["room"]["e2ee"], true);
    // Recording is refused with the typed reason, and nothing is recorded.
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    assert_eq!(error(&mut host).await, "recording_e2ee");
    none_of(&mut ann, "room").await;
    // Off again: the refusal is another one (no recorder here), not the E2EE one.
    send(&mut host, json!({"type": "set_e2ee", "enabled": false})).await;
    assert_eq!(next(&mut host, "room").await["room"]["e2ee"], false);
    send(&mut host, json!({"type": "set_recording", "recording": true})).await;
    let code = error(&mut host).await;
    assert!(code != "recording_e2ee", "{code}");
}

#[tokio::test]
async fn spotlight_for_everyone_cleared_when_they_leave() {
    let (addr, _app) = server().await;
    auto_bridge(&addr).await;
    let (mut host, _) = join(&addr, "stage", "Host").await;
    let (mut ann, ann_id) = join(&addr, "stage", "Ann").await;
    send(&mut ann, json!({"type": "spotlight", "target": ann_id})).await;
    assert_eq!(error(&mut ann).await, "not_moderator");
    send(&mut host, json!({"type": "spotlight", "target": "nobody"})).await;
    assert_eq!(error(&mut host).await, "unknown_participant");
    send(&mut host, json!({"type": "spotlight", "target": ann_id})).await;
    assert_eq!(next(&mut host, "room").await["room"]["spotlight"], ann_id.as_str());
    assert_eq!(next(&mut ann, "room").await["room"]["spotlight"], ann_id.as_str());
    // A late joiner learns it from `joined`.
    let mut bob = connect(&addr).await;
    send(&mut bob, json!({"type": "join", "v": 2, "room": "stage", "name": "Bob"})).await;
    assert_eq!(next(&mut bob, "joined").await["room"]["spotlight"], ann_id.as_str());
    // The spotlighted one leaves: nobody is.
    send(&mut ann, json!({"type": "leave"})).await;
    assert!(next(&mut host, "room").await["room"].get("spotlight").is_none());
    assert!(next(&mut bob, "room").await["room"].get("spotlight").is_none());
    // Clearing what is clear changes nothing.
    send(&mut host, json!({"type": "spotlight", "target": null})).await;
    none_of(&mut bob, "room").await;
}
