//! In-process tests of the focus: a fake bridge and a fake client over real WebSockets against
//! the real router (allocation, offer/answer relay, refusal of a wrong bridge secret, and
//! migration when a bridge vanishes).
use std::time::Duration;

use convene_proto::control::{
    self, AdvertisedAddress, Drain, FromBridge, LoadReport, SlotInfo, SlotMedia, SlotSource, SourceKind,
    ToBridge,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::{Args, Settings, SignalingConfig};
use crate::state::App;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn server() -> (String, std::sync::Arc<App>) {
    server_with(SignalingConfig::default()).await
}

pub async fn server_with(file: SignalingConfig) -> (String, std::sync::Arc<App>) {
    // Many test clients share 127.0.0.1: no per-address limit unless a test sets one.
    server_args(file, Args { max_unauthenticated_per_address: Some(0), ..Default::default() }).await
}

/// The real accept loop (`crate::serve`) on a loopback port, with these flags on top of `file`.
pub async fn server_args(file: SignalingConfig, args: Args) -> (String, std::sync::Arc<App>) {
    let args = Args { bridge_secret: Some("s3cret".into()), ..args };
    let mut settings = Settings::resolve(file, &args).unwrap();
    settings.listen = "127.0.0.1:0".into();
    let tls = settings.tls.as_ref().map(|(c, k)| crate::serve::tls_acceptor(c, k).unwrap());
    let app = App::new(settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(crate::serve::serve(listener, app.clone(), tls, std::future::pending()));
    tokio::spawn(crate::bridge::monitor(app.clone()));
    (addr, app)
}

pub async fn bridge(addr: &str, id: &str, secret: &str) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{addr}/bridge").into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let reg = FromBridge::Register {
        protocol_version: control::PROTOCOL_VERSION,
        bridge_id: id.into(),
        region: None,
        version: "test".into(),
        addresses: vec![AdvertisedAddress { address: "127.0.0.1".into(), source: "static".into() }],
        udp_port: 10000,
        tcp_port: None,
        drain: None,
    };
    ws.send(tungstenite::Message::text(control::to_json(&reg))).await?;
    ws.send(tungstenite::Message::text(control::to_json(&FromBridge::Load(LoadReport::default())))).await?;
    Ok(ws)
}

pub async fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("timeout")
            .unwrap()
            .unwrap();
        if let tungstenite::Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

pub async fn next_of(ws: &mut Ws, ty: &str) -> serde_json::Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == ty {
            return v;
        }
    }
}

pub async fn next_control(ws: &mut Ws) -> ToBridge {
    serde_json::from_value(next_json(ws).await).expect("a bridge-control message")
}

/// Answer allocations on a fake bridge until an offer arrives; answer it too.
async fn serve_bridge_once(ws: &mut Ws) -> (String, String) {
    loop {
        match next_control(ws).await {
            ToBridge::AllocateEndpoint { id, conference, endpoint } => {
                let r =
                    FromBridge::Allocated { id, conference, endpoint, candidates: vec![], ice_lite: true };
                ws.send(tungstenite::Message::text(control::to_json(&r))).await.unwrap();
            }
            ToBridge::Offer { id, conference, endpoint, .. } => {
                let r = FromBridge::Answer {
                    id,
                    conference: conference.clone(),
                    endpoint: endpoint.clone(),
                    sdp: "answer-sdp".into(),
                };
                ws.send(tungstenite::Message::text(control::to_json(&r))).await.unwrap();
                return (conference, endpoint);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn wrong_bridge_secret_refused() {
    let (addr, _app) = server().await;
    assert!(bridge(&addr, "b", "wrong").await.is_err());
    let mut req = format!("ws://{addr}/bridge").into_client_request().unwrap();
    req.headers_mut().remove("authorization");
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
}

#[tokio::test]
async fn join_allocate_relay_and_migrate() {
    let (addr, app) = server().await;
    let mut b1 = bridge(&addr, "b1", "s3cret").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    // Garbage first: a typed error, the connection stays usable.
    client.send(tungstenite::Message::text("{nope")).await.unwrap();
    assert_eq!(next_of(&mut client, "error").await["code"], "bad_request");
    client
        .send(tungstenite::Message::text(r#"{"type":"join","v":2,"room":"Standup","name":"Ada"}"#))
        .await
        .unwrap();
    let joined = next_of(&mut client, "joined").await;
    assert_eq!(joined["you"]["name"], "Ada");
    assert_eq!(joined["you"]["moderator"], true);
    let (media, ()) = tokio::join!(next_of(&mut client, "media"), async {
        // The bridge sees the allocation; answer it.
        if let ToBridge::AllocateEndpoint { id, conference, endpoint } = next_control(&mut b1).await {
            assert_eq!(conference, "standup");
            let r = FromBridge::Allocated { id, conference, endpoint, candidates: vec![], ice_lite: true };
            b1.send(tungstenite::Message::text(control::to_json(&r))).await.unwrap();
        } else {
            panic!("expected allocate_endpoint");
        }
    });
    assert_eq!(media["bridge"], "b1");
    assert_eq!(media["migration"], false);
    client
        .send(tungstenite::Message::text(r#"{"type":"offer","sdp":"offer-sdp","sources":[]}"#))
        .await
        .unwrap();
    let (answer, (conference, endpoint)) =
        tokio::join!(next_of(&mut client, "answer"), serve_bridge_once(&mut b1));
    assert_eq!(answer["sdp"], "answer-sdp");
    // The bridge offers the client's receive slots once, then tells it what they carry.
    let slot = |mid: &str, source: Option<(&str, SourceKind)>| SlotInfo {
        mid: mid.into(),
        media: if mid == "3" { SlotMedia::Audio } else { SlotMedia::Video },
        source: source.map(|(n, kind)| SlotSource { endpoint: "bob".into(), name: n.into(), kind }),
    };
    let offer = FromBridge::Offer {
        offer_id: 5,
        conference: conference.clone(),
        endpoint: endpoint.clone(),
        sdp: "slots-sdp".into(),
        slots: vec![slot("3", None), slot("4", None)],
    };
    b1.send(tungstenite::Message::text(control::to_json(&offer))).await.unwrap();
    let o = next_of(&mut client, "offer").await;
    assert_eq!((o["id"].as_u64(), o["slots"][1]["mid"].as_str()), (Some(5), Some("4")));
    client
        .send(tungstenite::Message::text(r#"{"type":"answer","id":5,"sdp":"client-answer"}"#))
        .await
        .unwrap();
    loop {
        if let ToBridge::Answer { offer_id, sdp, .. } = next_control(&mut b1).await {
            assert_eq!((offer_id, sdp.as_str()), (5, "client-answer"));
            break;
        }
    }
    let map = FromBridge::Slots {
        conference: conference.clone(),
        endpoint: endpoint.clone(),
        slots: vec![slot("4", Some(("bob-s0", SourceKind::Screen)))],
    };
    b1.send(tungstenite::Message::text(control::to_json(&map))).await.unwrap();
    let m = next_of(&mut client, "slots").await;
    assert_eq!(m["slots"][0]["source"]["name"], "bob-s0");
    assert_eq!(m["slots"][0]["source"]["kind"], "screen");

    // A second bridge registers; the first vanishes: the client is moved without asking.
    let mut b2 = bridge(&addr, "b2", "s3cret").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(b1);
    let (media, ()) = tokio::join!(next_of(&mut client, "media"), async {
        if let ToBridge::AllocateEndpoint { id, conference, endpoint } = next_control(&mut b2).await {
            let r = FromBridge::Allocated { id, conference, endpoint, candidates: vec![], ice_lite: true };
            b2.send(tungstenite::Message::text(control::to_json(&r))).await.unwrap();
        }
    });
    assert_eq!(media["bridge"], "b2");
    assert_eq!(media["migration"], true);
    assert_eq!(app.metrics.migrations.get(), 1);
    let metrics = app.metrics.render();
    assert!(metrics.contains("convene_signaling_joins_total 1"), "{metrics}");
    assert!(metrics.contains("convene_signaling_migrations_total 1"), "{metrics}");
    // b1 was serving when it went: a loss the alert counts (ConveneBridgeLost).
    assert!(metrics.contains(r#"convene_signaling_bridges_lost_total{state="serving"} 1"#), "{metrics}");
}

#[tokio::test]
async fn version_one_clients_are_refused() {
    let (addr, _app) = server().await;
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    // Version 1 had per-source m-lines; a client of it cannot follow slots.
    client
        .send(tungstenite::Message::text(r#"{"type":"join","v":1,"room":"r","name":"Old"}"#))
        .await
        .unwrap();
    assert_eq!(next_of(&mut client, "error").await["code"], "unsupported_version");
}

pub async fn join(addr: &str, room: &str) -> Ws {
    let (mut client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    let j = format!(r#"{{"type":"join","v":2,"room":"{room}","name":"Ada"}}"#);
    client.send(tungstenite::Message::text(j)).await.unwrap();
    next_of(&mut client, "joined").await;
    client
}

pub async fn allocate_on(b: &mut Ws) {
    loop {
        if let ToBridge::AllocateEndpoint { id, conference, endpoint } = next_control(b).await {
            let r = FromBridge::Allocated { id, conference, endpoint, candidates: vec![], ice_lite: true };
            b.send(tungstenite::Message::text(control::to_json(&r))).await.unwrap();
            return;
        }
    }
}

#[tokio::test]
async fn draining_bridge_conferences_move_at_the_deadline() {
    // The bridge owns the deadline: signaling moves the conference when the time the bridge
    // reported as left has run out, by signaling's own clock.
    let (addr, app) = server().await;
    let mut b1 = bridge(&addr, "b1", "s3cret").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = join(&addr, "room").await;
    let (media, ()) = tokio::join!(next_of(&mut client, "media"), allocate_on(&mut b1));
    assert_eq!(media["bridge"], "b1");
    let mut b2 = bridge(&addr, "b2", "s3cret").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A new conference never lands on a draining bridge; an existing one moves at the deadline.
    let drain = Drain { elapsed_ms: 29_000, deadline_ms: 30_000 };
    b1.send(tungstenite::Message::text(control::to_json(&FromBridge::Draining { drain: Some(drain) })))
        .await
        .unwrap();
    let (media, ()) = tokio::join!(next_of(&mut client, "media"), allocate_on(&mut b2));
    assert_eq!(media["bridge"], "b2");
    assert_eq!(media["migration"], true);
    // The old endpoint is freed on the draining bridge.
    loop {
        if let ToBridge::ExpireEndpoint { conference, .. } = next_control(&mut b1).await {
            assert_eq!(conference, "room");
            break;
        }
    }
    // The drained bridge goes away: counted as lost while draining, which the alert ignores.
    drop(b1);
    let lost = |state: &str| app.metrics.bridges_lost.with_label_values(&[state]).get();
    let deadline = std::time::Instant::now() + crate::bridge::RECONNECT_GRACE + Duration::from_secs(3);
    while lost("draining") == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((lost("draining"), lost("serving")), (1, 0));
}

#[tokio::test]
async fn no_bridge_is_a_typed_error() {
    let (addr, _app) = server().await;
    let mut client = join(&addr, "lonely").await;
    let e = next_of(&mut client, "error").await;
    assert_eq!(e["code"], "no_bridge");
}
