//! In-process tests of routing across a group: real signalings on loopback sharing a
//! membership file, a client WebSocket joining through one of them.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use convene_proto::config::{RoutingConfig, SignalingConfig};
use convene_proto::routing::{GroupMember, GroupMembership, owner};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite;

use crate::config::{Args, Settings};
use crate::focus_tests::{Ws, next_json};
use crate::state::App;

const SECRET: &str = "group-s3cret";

struct Node {
    addr: String,
    app: Arc<App>,
}

fn member(shard: &str, addr: &str) -> GroupMember {
    GroupMember {
        shard: shard.into(),
        url: format!("ws://{addr}/_shard/{shard}/ws"),
        internal_url: format!("http://{addr}"),
        ready: true,
        ..Default::default()
    }
}

/// Signalings named `names` of one group; `dead` names members listed (Ready) at a port where
/// nothing listens.
async fn group(dir: &Path, names: &[&str], dead: &[&str]) -> (Vec<Node>, Vec<GroupMember>) {
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let members_file = dir.join("group.json");
    let mut listeners = vec![];
    let mut members = vec![];
    for n in names {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        members.push(member(n, &l.local_addr().unwrap().to_string()));
        listeners.push(l);
    }
    for n in dead {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        members.push(member(n, &l.local_addr().unwrap().to_string()));
    }
    let g = GroupMembership { group: "meet".into(), members: members.clone() };
    std::fs::write(&members_file, serde_json::to_string(&g).unwrap()).unwrap();
    let mut nodes = vec![];
    for (n, listener) in names.iter().zip(listeners) {
        let cfg = RoutingConfig {
            group: "meet".into(),
            shard: n.to_string(),
            members_file: members_file.to_string_lossy().into(),
            secret_file: secret_file.to_string_lossy().into(),
            ..Default::default()
        };
        let args = Args {
            bridge_secret: Some("s3cret".into()),
            max_unauthenticated_per_address: Some(0),
            ..Default::default()
        };
        let settings = Settings::resolve(SignalingConfig::default(), &args).unwrap();
        let routing = crate::routing::Routing::new(&cfg).unwrap();
        let app = App::with_routing(settings, Some(routing)).unwrap();
        assert!(app.routing.as_ref().unwrap().reload(&app), "the membership is read");
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(crate::serve::serve(listener, app.clone(), None, std::future::pending()));
        nodes.push(Node { addr, app });
    }
    (nodes, members)
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("convene-routing-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn join(url: &str, room: &str) -> (Ws, serde_json::Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let j = serde_json::json!({"type": "join", "v": 2, "room": room, "name": "t"});
    ws.send(tungstenite::Message::text(j.to_string())).await.unwrap();
    loop {
        let v = next_json(&mut ws).await;
        if v["type"] != "hello" {
            return (ws, v);
        }
    }
}

/// A room whose owner among `members` is `shard`.
fn room_owned_by(members: &[GroupMember], shard: &str) -> String {
    (0..).map(|i| format!("r-{i}")).find(|r| owner(r, members).unwrap().shard == shard).unwrap()
}

async fn get(addr: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let members = [member("x", addr)];
    let base = &members[0].internal_url;
    // The same client signaling uses, but with any secret, and the raw status.
    let r = crate::routing::query(base, path, auth.unwrap_or("")).await;
    match r {
        Ok(p) => (200, serde_json::to_string(&p).unwrap()),
        Err(e) => (e.to_string()[..3].parse().unwrap_or(0), e.to_string()),
    }
}

#[tokio::test]
async fn internal_room_query_wants_the_group_secret() {
    let dir = scratch("internal");
    let (nodes, _) = group(&dir, &["a"], &[]).await;
    let (status, _) = get(&nodes[0].addr, "standup", Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, body) = get(&nodes[0].addr, "standup", Some(SECRET)).await;
    assert_eq!((status, body.as_str()), (200, r#"{"live":false,"participants":0}"#));
    let (status, _) = get(&nodes[0].addr, "a%20b", Some(SECRET)).await;
    assert_eq!(status, 400, "room names are checked as for joins");
}

#[tokio::test]
async fn joins_go_to_the_owner_and_live_rooms_stay_where_they_are() {
    let dir = scratch("owner");
    let (nodes, members) = group(&dir, &["a", "b"], &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // A room of b's, joined through a: redirected to b's URL with the hop counted.
    let room = room_owned_by(&members, "b");
    let (_ws, m) = join(&format!("ws://{}/ws", a.addr), &room).await;
    assert_eq!(m["type"], "redirect", "{m}");
    assert_eq!(m["shard"], "b");
    assert_eq!(m["url"], format!("ws://{}/_shard/b/ws?hops=1", b.addr));
    // Followed: b takes it.
    let (_in_b, m) = join(m["url"].as_str().unwrap(), &room).await;
    assert_eq!(m["type"], "joined", "{m}");
    // A room of a's: joined at once.
    let mine = room_owned_by(&members, "a");
    let (_in_a, m) = join(&format!("ws://{}/ws", a.addr), &mine).await;
    assert_eq!(m["type"], "joined", "{m}");
    // Another shard's path is not served here.
    assert!(tokio_tungstenite::connect_async(format!("ws://{}/_shard/b/ws", a.addr)).await.is_err());

    // A room of b's made live on a (a join that ran out of hops stays where it is): b sends
    // newcomers to a, where the room is, not to itself.
    let room2 = (1..).map(|i| format!("s-{i}")).find(|r| owner(r, &members).unwrap().shard == "b").unwrap();
    let (_held, m) = join(&format!("ws://{}/ws?hops=2", a.addr), &room2).await;
    assert_eq!(m["type"], "joined", "{m}");
    let (_ws, m) = join(&format!("ws://{}/ws", b.addr), &room2).await;
    assert_eq!((m["type"].as_str(), m["shard"].as_str()), (Some("redirect"), Some("a")), "{m}");
    let text = b.app.metrics.render();
    assert!(text.contains(r#"convene_signaling_routing_redirects_total{why="live"} 1"#), "{text}");
}

#[tokio::test]
async fn a_dead_peer_is_skipped_and_its_rooms_go_to_the_next_in_hash_order() {
    let dir = scratch("dead");
    let (nodes, members) = group(&dir, &["a", "b"], &["c"]).await;
    let a = &nodes[0];
    let room = room_owned_by(&members, "c");
    let survivors: Vec<GroupMember> = members.iter().filter(|m| m.shard != "c").cloned().collect();
    let next = owner(&room, &survivors).unwrap().shard.clone();
    let started = std::time::Instant::now();
    let (_ws, m) = join(&format!("ws://{}/ws", a.addr), &room).await;
    assert!(started.elapsed() < Duration::from_secs(2), "a refused connection is not waited for");
    if next == "a" {
        assert_eq!(m["type"], "joined", "{m}");
    } else {
        assert_eq!((m["type"].as_str(), m["shard"].as_str()), (Some("redirect"), Some(next.as_str())), "{m}");
    }
    let text = a.app.metrics.render();
    assert!(text.contains(r#"convene_signaling_routing_peer_failures_total{peer="c"} 1"#), "{text}");
    assert!(text.contains(r#"convene_signaling_routing_members{state="unhealthy"} 1"#), "{text}");
}

#[tokio::test]
async fn a_bad_membership_file_keeps_the_last_good_one() {
    let dir = scratch("bad");
    let (nodes, _) = group(&dir, &["a", "b"], &[]).await;
    let r = nodes[0].app.routing.clone().unwrap();
    std::fs::write(dir.join("group.json"), "{not json").unwrap();
    assert!(!r.reload(&nodes[0].app));
    assert_eq!(r.membership().members.len(), 2, "the last good membership stays");
    assert!(nodes[0].app.metrics.render().contains("convene_signaling_routing_membership_errors_total 1"));
    // A ConfigMap update: a new file swapped in by rename.
    let g = GroupMembership { group: "meet".into(), members: vec![member("a", &nodes[0].addr)] };
    std::fs::write(dir.join("group.new"), serde_json::to_string(&g).unwrap()).unwrap();
    std::fs::rename(dir.join("group.new"), dir.join("group.json")).unwrap();
    assert!(r.reload(&nodes[0].app));
    assert_eq!(r.membership().members.len(), 1);
}
