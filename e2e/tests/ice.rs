//! Clients' ICE reports reach what the operator reads (issue 15 item 5): a real
//! `convene-signaling` and two real `convene-bridge`s on loopback. Participants get media on a
//! bridge and report how their peer connection went (`ice_report`, as the web app does once its
//! connection connected or failed); each bridge's load report (`GET /load`, what the operator
//! scrapes) carries signaling's counts for that bridge within seconds, and signaling's metric
//! counts each peer connection once however often a client repeats its report.
//!
//! Netns tier (`unshare -n`, loopback only); needs the workspace binaries built first:
//!
//!   unshare -rn sh -c 'ip link set lo up; cargo test -p convene-e2e --test ice -- --nocapture'

use std::time::Duration;

use convene_e2e::client::RoomClient;
use convene_e2e::stack::Stack;
use convene_e2e::{eventually, http_get};
use convene_proto::client::{CandidateType, ClientMsg, IceOutcome, ServerMsg};
use convene_proto::load::{IceCounts, LoadReport};
use convene_proto::paths;

/// The bridge named in the participant's `media` message.
async fn media_bridge(c: &mut RoomClient) -> String {
    match c.wait("media", |m| matches!(m, ServerMsg::Media { .. })).await {
        ServerMsg::Media { bridge, .. } => bridge,
        _ => unreachable!(),
    }
}

/// The ICE counts in a bridge's load report, once they are `want`.
async fn reported(http_port: u16, want: IceCounts) -> IceCounts {
    eventually(
        "the bridge's load report carries signaling's ICE counts",
        Duration::from_secs(20),
        || async move {
            let r: LoadReport = serde_json::from_str(&http_get(http_port, paths::BRIDGE_LOAD).await?)?;
            Ok(r.ice.filter(|i| *i == want))
        },
    )
    .await
}

#[tokio::test]
async fn clients_ice_reports_reach_each_bridges_load_report() {
    let stack = Stack::start_with("ice", None, &["bridge-a", "bridge-b"]).await;
    let port_of = |id: &str| stack.bridges.iter().find(|b| b.id == id).expect("bridge").http_port;
    // Rooms until both bridges carry one (new conferences go to the least loaded bridge).
    let mut by_bridge: std::collections::BTreeMap<String, RoomClient> = Default::default();
    for i in 0..20 {
        let mut c = RoomClient::join(stack.sig_port, &format!("ice-{i}"), "ada").await;
        let bridge = media_bridge(&mut c).await;
        by_bridge.entry(bridge).or_insert(c);
        if by_bridge.len() == 2 {
            break;
        }
    }
    assert_eq!(by_bridge.len(), 2, "rooms on both bridges: {:?}", by_bridge.keys());
    let report = |bridge: &str, outcome, candidate| ClientMsg::IceReport {
        bridge: bridge.into(),
        outcome,
        candidate,
        turn_error: None,
    };
    // bridge-a: its client connected through TURN, and says so three times.
    let a = by_bridge.get_mut("bridge-a").unwrap();
    for _ in 0..3 {
        a.send(report("bridge-a", IceOutcome::Connected, Some(CandidateType::Relay))).await;
    }
    // bridge-b: its client's ICE failed; a report naming the other bridge is not counted.
    let b = by_bridge.get_mut("bridge-b").unwrap();
    b.send(report("bridge-a", IceOutcome::Failed, None)).await;
    b.send(report("bridge-b", IceOutcome::Failed, None)).await;

    let a = reported(port_of("bridge-a"), IceCounts { connected: 1, relayed: 1, failed: 0 }).await;
    let b = reported(port_of("bridge-b"), IceCounts { connected: 0, relayed: 0, failed: 1 }).await;
    println!("bridge-a reports {a:?}, bridge-b {b:?}");
    let metrics = http_get(stack.sig_port, paths::METRICS).await.expect("signaling metrics");
    for (series, n) in [
        (r#"convene_signaling_ice_total{bridge="bridge-a",candidate="relay",outcome="connected"}"#, 1),
        (r#"convene_signaling_ice_total{bridge="bridge-a",candidate="none",outcome="failed"}"#, 0),
        (r#"convene_signaling_ice_total{bridge="bridge-b",candidate="none",outcome="failed"}"#, 1),
    ] {
        assert!(metrics.contains(&format!("{series} {n}\n")), "{series} {n} in\n{metrics}");
    }
}
