//! Clients' ICE reports end to end in signaling: a joined client with media on a bridge
//! reports once per `media` message; the report is counted for its bridge (metric and window),
//! reaches the bridge in `ice_stats`, and nothing else a client sends adds to the counts.
use std::time::Duration;

use convene_proto::control::{IceCounts, ToBridge};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::focus_tests::{Ws, allocate_on, bridge, join, next_control, next_json, next_of, server};

async fn say(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string())).await.unwrap();
}

fn report(bridge: &str, outcome: &str, candidate: Option<&str>) -> String {
    let c = candidate.map(|c| format!(r#","candidate":"{c}""#)).unwrap_or_default();
    format!(r#"{{"type":"ice_report","bridge":"{bridge}","outcome":"{outcome}"{c}}}"#)
}

/// The next frame after everything sent before a `ping` is its `pong`: nothing (no error)
/// answered what was sent in between.
async fn quiet(ws: &mut Ws) {
    say(ws, r#"{"type":"ping"}"#).await;
    assert_eq!(next_json(ws).await["type"], "pong", "reports are ignored without a reply");
}

/// The next `ice_stats` a fake bridge gets (signaling sends them every few seconds).
async fn ice_stats(b: &mut Ws) -> IceCounts {
    loop {
        if let ToBridge::IceStats { ice } = next_control(b).await {
            return ice;
        }
    }
}

fn series(app: &crate::state::App, bridge: &str, outcome: &str, candidate: &str) -> u64 {
    app.metrics.ice.with_label_values(&[bridge, outcome, candidate]).get()
}

#[tokio::test]
async fn a_report_per_media_message_is_counted_for_the_bridge_and_reaches_it() {
    let (addr, app) = server().await;
    let mut b1 = bridge(&addr, "b1", "s3cret").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every series of a registered bridge exists at 0 (alerts take increase() of them).
    let text = app.metrics.render();
    assert!(
        text.contains(r#"convene_signaling_ice_total{bridge="b1",candidate="relay",outcome="connected"} 0"#),
        "{text}"
    );
    assert!(text.contains(r#"convene_signaling_ice_total{bridge="b1",candidate="none",outcome="failed"} 0"#));

    // A stranger who never joined cannot report.
    let (mut stranger, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    next_of(&mut stranger, "hello").await;
    say(&mut stranger, &report("b1", "failed", None)).await;
    assert_eq!(next_of(&mut stranger, "error").await["code"], "not_joined");

    // Joined, but before media: nothing to report on.
    let mut client = join(&addr, "ice").await;
    say(&mut client, &report("b1", "failed", None)).await;
    let (media, ()) = tokio::join!(next_of(&mut client, "media"), allocate_on(&mut b1));
    assert_eq!(media["bridge"], "b1");
    // A report naming another bridge is not this participant's.
    say(&mut client, &report("b2", "failed", None)).await;
    say(&mut client, &report("b1", "connected", Some("relay"))).await;
    // One peer connection, one report: the rest are ignored, however many.
    for _ in 0..50 {
        say(&mut client, &report("b1", "failed", None)).await;
        say(&mut client, &report("b1", "connected", Some("host"))).await;
    }
    quiet(&mut client).await;
    assert_eq!(series(&app, "b1", "connected", "relay"), 1);
    assert_eq!(series(&app, "b1", "connected", "host"), 0);
    assert_eq!(series(&app, "b1", "failed", "none"), 0);
    let now = std::time::Instant::now();
    assert_eq!(
        crate::state::lock(&app.ice).counts("b1", now),
        IceCounts { connected: 1, relayed: 1, failed: 0 }
    );
    assert_eq!(crate::state::lock(&app.ice).len(), 1, "only the bridge reported on is kept");

    // What the bridge is told, within signaling's publishing period.
    let ice =
        tokio::time::timeout(crate::ice::PUBLISH_EVERY * 3, ice_stats(&mut b1)).await.expect("ice_stats");
    assert_eq!(ice, IceCounts { connected: 1, relayed: 1, failed: 0 });

    // The conference moves to b2 (b1 is gone): its `media` message allows one more report,
    // for b2; a late report for b1's peer connection is not counted for either.
    let mut b2 = bridge(&addr, "b2", "s3cret").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(b1);
    let (media, ()) = tokio::join!(next_of(&mut client, "media"), allocate_on(&mut b2));
    assert_eq!((media["bridge"].as_str(), media["migration"].as_bool()), (Some("b2"), Some(true)));
    say(&mut client, &report("b1", "failed", None)).await;
    say(&mut client, &report("b2", "failed", None)).await;
    say(&mut client, &report("b2", "failed", None)).await;
    quiet(&mut client).await;
    assert_eq!(series(&app, "b1", "failed", "none"), 0, "a report about the old bridge is dropped");
    assert_eq!(series(&app, "b2", "failed", "none"), 1);
    let ice =
        tokio::time::timeout(crate::ice::PUBLISH_EVERY * 3, ice_stats(&mut b2)).await.expect("ice_stats");
    assert_eq!(ice, IceCounts { connected: 0, relayed: 0, failed: 1 });
}

#[tokio::test]
async fn a_turn_error_is_counted_once_with_its_report_and_only_then() {
    let (addr, app) = server().await;
    let mut b1 = bridge(&addr, "b1", "s3cret").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let turn = |reason: &str| app.metrics.turn_errors.with_label_values(&[reason]).get();
    let text = app.metrics.render();
    for reason in ["auth", "refused", "unreachable"] {
        let series = format!(r#"convene_signaling_turn_errors_total{{reason="{reason}"}} 0"#);
        assert!(text.contains(&series), "every reason exists at 0: {text}");
    }
    let mut client = join(&addr, "turn").await;
    let (_, ()) = tokio::join!(next_of(&mut client, "media"), allocate_on(&mut b1));
    // Connected directly while the relay refused the minted credentials: both are said.
    let with =
        |e: &str| report("b1", "connected", Some("host")).replace('}', &format!(r#","turn_error":"{e}"}}"#));
    say(&mut client, &with("auth")).await;
    // One per `media` message: more reports add no TURN errors, whatever they say.
    for _ in 0..20 {
        say(&mut client, &with("unreachable")).await;
    }
    quiet(&mut client).await;
    assert_eq!((turn("auth"), turn("unreachable"), turn("refused")), (1, 0, 0));
    assert_eq!(series(&app, "b1", "connected", "host"), 1);
}
