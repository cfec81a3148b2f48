//! Simulcast layer selection and last-N, end to end through str0m clients.
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Client, Harness};
use convene_media::control::{FromBridge, ReceiverConstraints, ToBridge};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowered_constraint_switches_layer_on_keyframe() {
    let mut h = Harness::new("sim").await;
    h.join(Client::new("pub", true, true));
    h.join(Client::new("sub", false, false));
    h.pump_until(Duration::from_secs(20), "sub gets the 720p layer", |h| {
        let r = h.client("sub").received_from("pub-v0");
        r.frames >= 10 && r.layers.last() == Some(&2)
    });
    let id = h.next_id();
    let reply = h.request(ToBridge::ReceiverConstraints {
        id,
        conference: "sim".into(),
        endpoint: "sub".into(),
        constraints: ReceiverConstraints {
            max_height: BTreeMap::from([("pub".to_string(), 180)]),
            ..ReceiverConstraints::default()
        },
    });
    assert_eq!(reply, FromBridge::Ok { id });
    h.pump_until(Duration::from_secs(10), "sub switched to the 180p layer", |h| {
        let r = h.client("sub").received_from("pub-v0");
        r.layers.last() == Some(&0) && r.last_height == Some(180)
    });
    let r = h.client("sub").received_from("pub-v0");
    // Every change of layer started with a keyframe of the new layer.
    assert!(r.switches.iter().all(|(_, key)| *key), "switches: {:?}", r.switches);
    assert!(r.switches.iter().any(|(l, _)| *l == 0));
    // Raise it again: back to the top layer.
    let id = h.next_id();
    h.request(ToBridge::ReceiverConstraints {
        id,
        conference: "sim".into(),
        endpoint: "sub".into(),
        constraints: ReceiverConstraints::default(),
    });
    h.pump_until(Duration::from_secs(10), "sub back on 720p", |h| {
        h.client("sub").received_from("pub-v0").layers.last() == Some(&2)
    });
    assert!(h.bridge.metrics.layer_switches.get() >= 2);
    assert!(h.bridge.metrics.keyframe_requests.get() >= 1);
    h.bridge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_one_forwards_only_the_dominant_speaker() {
    let mut h = Harness::new("lastn").await;
    // Quiet publishers join first, so join order alone would pick "quiet1".
    for (name, level) in [("quiet1", -127i8), ("quiet2", -127), ("loud", -20)] {
        let mut c = Client::new(name, true, false);
        c.audio_level = level;
        h.join(c);
    }
    h.join(Client::new("viewer", false, false));
    let id = h.next_id();
    h.request(ToBridge::ReceiverConstraints {
        id,
        conference: "lastn".into(),
        endpoint: "viewer".into(),
        constraints: ReceiverConstraints { last_n: 1, ..ReceiverConstraints::default() },
    });
    h.wait_for(
        |m| matches!(m, FromBridge::DominantSpeaker { endpoint, .. } if endpoint == "loud"),
        Duration::from_secs(20),
    );
    h.pump_until(Duration::from_secs(10), "viewer gets the speaker's video", |h| {
        h.client("viewer").received_from("loud-v0").frames >= 5
    });
    h.pump(Duration::from_millis(300));
    let before: Vec<u64> = ["loud", "quiet1", "quiet2"]
        .iter()
        .map(|p| h.client("viewer").received_from(&format!("{p}-v0")).frames)
        .collect();
    let audio_before = h.client("viewer").received_from("quiet1-a0").frames;
    h.pump(Duration::from_millis(1500));
    let after: Vec<u64> = ["loud", "quiet1", "quiet2"]
        .iter()
        .map(|p| h.client("viewer").received_from(&format!("{p}-v0")).frames)
        .collect();
    assert!(after[0] >= before[0] + 20, "speaker video flows: {before:?} → {after:?}");
    assert_eq!(after[1], before[1], "quiet1 video not forwarded");
    assert_eq!(after[2], before[2], "quiet2 video not forwarded");
    // Audio is always forwarded.
    assert!(h.client("viewer").received_from("quiet1-a0").frames >= audio_before + 30);
    h.bridge.shutdown();
}
