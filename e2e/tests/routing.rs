//! Routing across a group of shards (issue 17): three `convene-signaling`s of one group (one
//! membership file, one group secret), each with its own `convene-bridge`. 200 rooms of two
//! protocol-level participants all enter through ONE signaling (the entry) and follow its
//! `redirect`s: every room's participants end up on one shard, the room's owner by rendezvous
//! hashing, and the rooms spread over the three. A fourth shard joins the group: the live rooms
//! it now owns by hash stay where they are, new rooms go to their owner over the four (about a
//! quarter to the newcomer). Then a shard other than the entry is killed
//! (signaling and bridge, SIGKILL): its participants lose their sockets, come back through the
//! entry, and land together on the next shard in hash order within 5 s; nobody is lost and
//! nobody else moves.
//!
//! Netns tier (`unshare -n`, loopback only); needs the workspace binaries built first:
//!
//!   unshare -rn sh -c 'ip link set lo up; cargo test -p convene-e2e --test routing -- --nocapture'

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convene_e2e::client::muted_join;
use convene_e2e::stack::{binary, log_file, scratch, spawn_bridge};
use convene_e2e::{Process, eventually, free_port, http_get};
use convene_proto::client::{ClientMsg, ServerMsg};
use convene_proto::routing::{GroupMember, GroupMembership, owner};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const ROOMS: usize = 200;
const PER_ROOM: usize = 2;
const FAILOVER_BUDGET: Duration = Duration::from_secs(5);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Shard {
    name: String,
    port: u16,
    signaling: Option<Process>,
    bridge: Option<Process>,
}

fn member(name: &str, port: u16) -> GroupMember {
    GroupMember {
        shard: name.into(),
        // The group's public path convention (`/_shard/<shard>/ws`), served by signaling as is.
        url: format!("ws://127.0.0.1:{port}{}", convene_proto::paths::shard_ws_path(name)),
        internal_url: format!("http://127.0.0.1:{port}"),
        ready: true,
        draining: false,
        region: None,
    }
}

/// Where a participant is: the port of the shard it joined, and how many times it joined.
#[derive(Clone, Copy, Debug, Default)]
struct Seat {
    port: u16,
    joins: u32,
    /// When it last lost its socket, and when it was back in its room.
    lost_at: Option<Instant>,
    back_at: Option<Instant>,
}

type Seats = Arc<Mutex<HashMap<(usize, usize), Seat>>>;

/// Open `url`, send the join, follow `redirect`s; the joined socket and the port it is on.
async fn join(entry: &str, room: &str, name: &str) -> anyhow::Result<(Ws, u16)> {
    let mut url = entry.to_string();
    for _ in 0..4 {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
        let join = muted_join(room, name);
        ws.send(Message::text(join.to_json())).await?;
        let next = loop {
            let f = tokio::time::timeout(Duration::from_secs(10), ws.next()).await?;
            let Some(Ok(Message::Text(t))) = f else {
                anyhow::bail!("socket closed before joining: {f:?}");
            };
            match convene_proto::client::parse_server(t.as_str()).map_err(anyhow::Error::msg)? {
                ServerMsg::Joined { .. } => {
                    let port = url.split(':').nth(2).and_then(|p| p.split('/').next()).unwrap_or_default();
                    return Ok((ws, port.parse()?));
                }
                ServerMsg::Redirect { url, .. } => break url,
                ServerMsg::Error { code, message } => anyhow::bail!("refused: {code:?} {message}"),
                _ => {}
            }
        };
        url = next;
    }
    anyhow::bail!("more than 3 redirects")
}

/// A participant: joins through the entry, keeps its socket (pinging), and when the socket
/// dies joins again through the entry, as the web app does.
async fn participant(entry: String, room: usize, idx: usize, seats: Seats) {
    let (name, who) = (format!("route-{room}"), format!("p{room}-{idx}"));
    loop {
        let (mut ws, port) = loop {
            match join(&entry, &name, &who).await {
                Ok(j) => break j,
                Err(e) => {
                    eprintln!("{who}: join failed ({e:#}); again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        {
            let mut s = seats.lock().unwrap();
            let seat = s.entry((room, idx)).or_default();
            seat.port = port;
            seat.joins += 1;
            seat.back_at = Some(Instant::now());
        }
        let mut ping = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                f = ws.next() => match f {
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    _ => {}
                },
                _ = ping.tick() => {
                    if ws.send(Message::text(ClientMsg::Ping.to_json())).await.is_err() {
                        break;
                    }
                }
            }
        }
        seats.lock().unwrap().entry((room, idx)).or_default().lost_at = Some(Instant::now());
    }
}

/// Start `s`'s signaling (a member of group `meet`) and its bridge.
async fn start_shard(
    s: &mut Shard,
    dir: &std::path::Path,
    members_file: &std::path::Path,
    group_secret_file: &std::path::Path,
    bridge_secret: &str,
) {
    let config = dir.join(format!("{}.yaml", s.name));
    // 400 sockets from one address: no per-address limit here.
    let yaml = format!(
        "maxUnauthenticatedPerAddress: 0\nrouting:\n  group: meet\n  shard: {}\n  membersFile: {}\n  secretFile: {}\n",
        s.name,
        members_file.display(),
        group_secret_file.display()
    );
    std::fs::write(&config, yaml).unwrap();
    s.signaling = Some(Process(
        Command::new(binary("convene-signaling"))
            .args(["--listen", &format!("127.0.0.1:{}", s.port)])
            .arg("--config")
            .arg(&config)
            .env("CONVENE_BRIDGE_SECRET", bridge_secret)
            .env("RUST_LOG", "info")
            .stdout(log_file(dir, &format!("signaling-{}", s.name)))
            .stderr(log_file(dir, &format!("signaling-{}.err", s.name)))
            .spawn()
            .expect("convene-signaling starts"),
    ));
    let port = s.port;
    eventually("signaling /health", Duration::from_secs(20), || async move {
        Ok(http_get(port, "/health").await.ok().map(|_| ()))
    })
    .await;
    s.bridge = spawn_bridge(dir, &format!("bridge-{}", s.name), s.port, bridge_secret).process;
}

/// Every signaling that runs sees `eligible` members of the group.
async fn group_seen(shards: &[Shard], eligible: usize) {
    for s in shards.iter().filter(|s| s.signaling.is_some()) {
        let port = s.port;
        let want = format!("convene_signaling_routing_members{{state=\"eligible\"}} {eligible}");
        eventually(&format!("{} sees {eligible} members", s.name), Duration::from_secs(15), || {
            let want = want.clone();
            async move { Ok(http_get(port, "/metrics").await?.contains(&want).then_some(())) }
        })
        .await;
    }
}

/// Rooms per shard port, and the rooms whose participants are not all on one shard.
fn placement(seats: &Seats) -> (BTreeMap<usize, u16>, Vec<usize>) {
    let s = seats.lock().unwrap();
    let mut rooms = BTreeMap::new();
    let mut split = vec![];
    for room in 0..ROOMS {
        let ports: Vec<u16> = (0..PER_ROOM).filter_map(|i| s.get(&(room, i)).map(|x| x.port)).collect();
        if ports.iter().any(|p| *p != ports[0]) {
            split.push(room);
        }
        rooms.insert(room, ports[0]);
    }
    (rooms, split)
}

#[tokio::test]
async fn rooms_route_to_one_shard_and_fail_over_to_the_next_in_hash_order() {
    let dir = scratch("routing");
    let bridge_secret = format!("bridge-{}", std::process::id());
    let group_secret_file = dir.join("group-secret");
    std::fs::write(&group_secret_file, format!("group-{}\n", std::process::id())).unwrap();
    let names = ["meet-a", "meet-b", "meet-c"];
    let mut shards: Vec<Shard> = names
        .iter()
        .map(|n| Shard { name: n.to_string(), port: free_port(), signaling: None, bridge: None })
        .collect();
    let members: Vec<GroupMember> = shards.iter().map(|s| member(&s.name, s.port)).collect();
    let membership = GroupMembership { group: "meet".into(), members: members.clone() };
    let members_file = dir.join("group.json");
    std::fs::write(&members_file, serde_json::to_string_pretty(&membership).unwrap()).unwrap();
    for s in &mut shards {
        start_shard(s, &dir, &members_file, &group_secret_file, &bridge_secret).await;
    }
    for s in &shards {
        let port = s.port;
        eventually("the shard's bridge registered", Duration::from_secs(30), || async move {
            Ok(http_get(port, "/ready").await?.contains("1 bridge(s)").then_some(()))
        })
        .await;
        let m = http_get(port, "/metrics").await.unwrap();
        assert!(
            m.contains("convene_signaling_routing_members{state=\"eligible\"} 3"),
            "{} sees the group: {}",
            s.name,
            m.lines().filter(|l| l.contains("routing")).collect::<Vec<_>>().join("\n")
        );
    }
    // The group's internal query wants the group secret.
    let unauth = http_get(shards[1].port, "/internal/rooms/x").await;
    assert!(unauth.is_err_and(|e| e.to_string().contains("401")), "the internal query is authenticated");

    // Everyone enters through meet-a.
    let entry = format!("ws://127.0.0.1:{}/ws", shards[0].port);
    let seats: Seats = Arc::default();
    let started = Instant::now();
    let mut tasks = vec![];
    for room in 0..ROOMS {
        for idx in 0..PER_ROOM {
            tasks.push(tokio::spawn(participant(entry.clone(), room, idx, seats.clone())));
        }
        if room % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let all = ROOMS * PER_ROOM;
    eventually("every participant joined", Duration::from_secs(60), || {
        let seats = seats.clone();
        async move { Ok((seats.lock().unwrap().len() == all).then_some(())) }
    })
    .await;
    println!("{all} participants in {ROOMS} rooms joined through one entry in {:?}", started.elapsed());
    let (rooms, split) = placement(&seats);
    assert!(split.is_empty(), "rooms split over shards: {split:?}");
    let port_name: HashMap<u16, String> = shards.iter().map(|s| (s.port, s.name.clone())).collect();
    let mut spread: BTreeMap<&str, usize> = BTreeMap::new();
    for (room, port) in &rooms {
        let want = owner(&format!("route-{room}"), &members).unwrap();
        assert_eq!(port_name[port], want.shard, "room {room} is on its owner");
        *spread.entry(port_name[port].as_str()).or_default() += 1;
    }
    println!("spread over the group ({ROOMS} rooms): {spread:?}");
    for n in names {
        let got = spread.get(n).copied().unwrap_or(0);
        assert!(got >= ROOMS / 6, "{n} holds {got} rooms: {spread:?}");
    }

    // A fourth shard joins the group: a live room stays where it is, even the rooms the new
    // member now owns by hash; new rooms go to their owner over the four, ~1/4 to the new one.
    let mut fourth = Shard { name: "meet-d".into(), port: free_port(), signaling: None, bridge: None };
    let mut members = members;
    members.push(member(&fourth.name, fourth.port));
    let grown = GroupMembership { group: "meet".into(), members: members.clone() };
    // Replaced whole (a rename), as a ConfigMap volume swaps its files.
    let next = dir.join("group.json.next");
    std::fs::write(&next, serde_json::to_string_pretty(&grown).unwrap()).unwrap();
    std::fs::rename(&next, &members_file).unwrap();
    start_shard(&mut fourth, &dir, &members_file, &group_secret_file, &bridge_secret).await;
    let fourth_port = fourth.port;
    eventually("meet-d's bridge registered", Duration::from_secs(30), || async move {
        Ok(http_get(fourth_port, "/ready").await?.contains("1 bridge(s)").then_some(()))
    })
    .await;
    shards.push(fourth);
    group_seen(&shards, 4).await;
    let port_name: HashMap<u16, String> = shards.iter().map(|s| (s.port, s.name.clone())).collect();
    let now_owned: Vec<usize> =
        (0..ROOMS).filter(|r| owner(&format!("route-{r}"), &members).unwrap().shard == "meet-d").collect();
    assert!(!now_owned.is_empty());
    for room in &now_owned {
        let (_ws, port) = join(&entry, &format!("route-{room}"), "late").await.unwrap();
        assert_eq!(
            port, rooms[room],
            "live room {room} stayed on {} though meet-d owns it now",
            port_name[&rooms[room]]
        );
    }
    let mut new_rooms: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..100 {
        let room = format!("fresh-{i}");
        let (_ws, port) = join(&entry, &room, "first").await.unwrap();
        assert_eq!(port_name[&port], owner(&room, &members).unwrap().shard, "new room {room} on its owner");
        *new_rooms.entry(port_name[&port].clone()).or_default() += 1;
    }
    println!(
        "meet-d joined: {} live rooms it owns by hash stayed where they were; 100 new rooms: {new_rooms:?}",
        now_owned.len()
    );
    let on_new = new_rooms.get("meet-d").copied().unwrap_or(0);
    assert!((10..=45).contains(&on_new), "~1/4 of new rooms on the new member: {new_rooms:?}");

    // Kill meet-b (not the entry): signaling and bridge, as when its node dies.
    let victim = 1;
    let victim_port = shards[victim].port;
    let moved: Vec<usize> = rooms.iter().filter(|(_, p)| **p == victim_port).map(|(r, _)| *r).collect();
    let joins_before: HashMap<(usize, usize), u32> =
        seats.lock().unwrap().iter().map(|(k, v)| (*k, v.joins)).collect();
    let killed_at = Instant::now();
    shards[victim].signaling = None;
    shards[victim].bridge = None;
    let survivors: Vec<GroupMember> = members.iter().filter(|m| m.shard != names[victim]).cloned().collect();
    let failover = eventually("the killed shard's participants are back", Duration::from_secs(20), || {
        let seats = seats.clone();
        let moved = moved.clone();
        async move {
            let s = seats.lock().unwrap();
            let mut last = Duration::ZERO;
            for room in &moved {
                for idx in 0..PER_ROOM {
                    let seat = s[&(*room, idx)];
                    if seat.port == victim_port || seat.back_at.is_none_or(|t| t < killed_at) {
                        return Ok(None);
                    }
                    last = last.max(seat.back_at.unwrap() - killed_at);
                }
            }
            Ok(Some(last))
        }
    })
    .await;
    println!(
        "failover: {} rooms ({} participants) of {} back on the next shard in hash order {:.2} s after the kill",
        moved.len(),
        moved.len() * PER_ROOM,
        names[victim],
        failover.as_secs_f64()
    );
    let (rooms_after, split) = placement(&seats);
    assert!(split.is_empty(), "rooms split over shards after the failover: {split:?}");
    for room in &moved {
        let want = owner(&format!("route-{room}"), &survivors).unwrap();
        assert_eq!(
            port_name[&rooms_after[room]], want.shard,
            "room {room} went to the next shard in hash order"
        );
    }
    {
        let s = seats.lock().unwrap();
        assert_eq!(s.len(), all, "nobody lost");
        for ((room, idx), seat) in s.iter() {
            if !moved.contains(room) {
                assert_eq!(
                    seat.joins,
                    joins_before[&(*room, *idx)],
                    "participant {room}/{idx} of a live shard stayed"
                );
            }
        }
    }
    assert!(failover <= FAILOVER_BUDGET, "failover took {failover:?} (budget {FAILOVER_BUDGET:?})");
    let m = http_get(shards[0].port, "/metrics").await.unwrap();
    println!(
        "entry metrics:\n{}",
        m.lines().filter(|l| l.starts_with("convene_signaling_routing")).collect::<Vec<_>>().join("\n")
    );
    for t in tasks {
        t.abort();
    }

    // convene-loadgen (media and all) through the same entry, after the failover: it follows
    // the redirects too, and each of its rooms is on its owner among the survivors.
    let report = dir.join("loadgen.json");
    let mut lg = Process(
        Command::new(binary("convene-loadgen"))
            .args(["--signaling-url", &entry, "--participants", "6", "--rooms", "3", "--room-prefix", "lg-"])
            .args(["--duration-s", "8", "--ramp-ms", "50", "--progress-s", "4", "--report"])
            .arg(&report)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log_file(&dir, "loadgen"))
            .spawn()
            .expect("convene-loadgen starts"),
    );
    let secret = std::fs::read_to_string(&group_secret_file).unwrap();
    let live: Vec<(usize, String)> = eventually("loadgen's rooms are live", Duration::from_secs(20), || {
        let (shards, secret) = (&shards, secret.trim());
        async move {
            let mut found = vec![];
            for room in 0..3 {
                for s in shards.iter().filter(|s| s.signaling.is_some()) {
                    let answer = internal_room(s.port, &format!("lg-{room}"), secret)?;
                    if answer["participants"] == 2 {
                        found.push((room, s.name.clone()));
                    }
                }
            }
            Ok((found.len() == 3).then_some(found))
        }
    })
    .await;
    for (room, shard) in &live {
        assert_eq!(shard, &owner(&format!("lg-{room}"), &survivors).unwrap().shard, "loadgen room {room}");
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(st) = lg.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "loadgen did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let joined = v["per_participant"].as_array().unwrap().iter().filter(|p| p["joined"] == true).count();
    println!(
        "loadgen through the entry: rooms on {live:?}, {joined}/6 joined, {} received media, dropped {}",
        v["received_media"], v["dropped"]
    );
    assert_eq!(joined, 6, "{v}");
    assert!(status.success(), "loadgen: {status}; {v}");
}

/// `GET /internal/rooms/<room>` of the signaling on `port` with the group secret.
fn internal_room(port: u16, room: &str, secret: &str) -> anyhow::Result<serde_json::Value> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /internal/rooms/{room} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default();
    anyhow::ensure!(resp.starts_with("HTTP/1.1 200"), "{}", resp.lines().next().unwrap_or_default());
    Ok(serde_json::from_str(body)?)
}
