//! Bad input: garbage from strangers and from an endpoint must not disturb anyone.
mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Client, Harness, LOOP};
use convene_media::config::Config;

fn stun(username: &[u8], truncate: Option<usize>) -> Vec<u8> {
    let mut v = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    v.extend_from_slice(&[9; 12]);
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attr.extend_from_slice(username);
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let len = attr.len() as u16;
    v[2..4].copy_from_slice(&len.to_be_bytes());
    v.extend(attr);
    if let Some(t) = truncate {
        v.truncate(t);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_does_not_disturb_other_endpoints() {
    let mut cfg = Config::for_test(LOOP);
    // Low enough that the junk below is a flood, high enough for real media (~100 pps).
    cfg.max_pps_per_source = 2000.0;
    let mut h = Harness::with_config("noise", cfg).await;
    h.join(Client::new("pub", true, false));
    h.join(Client::new("sub", false, false));
    h.join(Client::new("rogue", true, false));
    h.pump_until(Duration::from_secs(20), "media flows", |h| {
        h.client("sub").received_from("pub-v0").frames >= 10
    });
    let bridge = h.bridge.udp_addr;
    let stranger = UdpSocket::bind((LOOP, 0)).unwrap();
    stranger.set_nonblocking(true).unwrap();
    let before = h.client("sub").received_from("pub-v0").frames;
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        // A burst of every kind of junk, then let the harness pump media for a moment.
        for i in 0..400u32 {
            let mut junk: Vec<u8> = (0..(i % 1400 + 1)).map(|_| fastrand::u8(..)).collect();
            junk[0] = match i % 6 {
                0 => 0x80 | (junk[0] & 0x3f), // RTP/RTCP-looking
                1 => 22,                      // DTLS-looking
                2 => 0xff,                    // nothing
                _ => junk[0],
            };
            let _ = stranger.send_to(&junk, bridge);
            let _ = stranger.send_to(&stun(b"nosuchufrag:x", None), bridge);
            let _ = stranger.send_to(&stun(b"abc:def", Some(23)), bridge);
            // The endpoint "rogue" sends junk from its own, ICE-validated address.
            let _ = h.client("rogue").socket.send_to(&junk, bridge);
            sent += 4;
        }
        h.pump(Duration::from_millis(20));
    }
    h.pump(Duration::from_millis(500));
    let after = h.client("sub").received_from("pub-v0").frames;
    // ~30 fps over 2.5 s: allow for scheduling noise, but media must keep flowing.
    assert!(
        after >= before + 45,
        "video kept flowing: {before} → {after} while {sent} junk packets were sent"
    );
    // The rogue's own media still works too.
    assert!(h.client("sub").received_from("rogue-v0").frames >= 10);
    let m = &h.bridge.metrics;
    for reason in ["unparseable", "unknown_ufrag", "malformed_stun", "unknown_source", "flood"] {
        let n = m.dropped.with_label_values(&[reason]).get();
        assert!(n > 0, "dropped{{reason={reason}}} = {n}");
    }
    assert!(h.bridge.is_alive());
    h.bridge.shutdown();
}
