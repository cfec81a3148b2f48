//! The media thread's batched socket on real loopback sockets: many datagrams per read, GSO
//! trains that arrive as the separate datagrams they were, and a wait that times out.
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use convene_media::io::batch::{BatchSocket, RecvBatch};

fn bound() -> BatchSocket {
    BatchSocket::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap()
}

fn sink() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

/// Every datagram queued at `s`, in arrival order (stops at the first 100 ms gap).
fn read_all(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.recv(&mut buf) {
        out.push(buf[..n].to_vec());
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    }
    out
}

#[test]
fn one_read_takes_every_queued_datagram_with_its_source() {
    let mut rx = bound();
    let to = rx.local_addr().unwrap();
    let (a, b) = (sink(), sink());
    for i in 0..20u8 {
        let from = if i % 2 == 0 { &a } else { &b };
        from.send_to(&[i; 100], to).unwrap();
    }
    assert!(rx.wait(Duration::from_secs(2)).unwrap());
    let mut batch = RecvBatch::allocate();
    // Loopback delivers synchronously: all 20 are queued, and one recvmmsg takes up to 32.
    assert_eq!(rx.recv(&mut batch).unwrap(), 20);
    let got: Vec<(SocketAddr, Vec<u8>)> = batch.datagrams().map(|(s, d)| (s, d.to_vec())).collect();
    assert_eq!(got.len(), 20);
    for (i, (src, d)) in got.iter().enumerate() {
        let from = if i % 2 == 0 { &a } else { &b };
        assert_eq!(*src, from.local_addr().unwrap());
        assert_eq!(d, &vec![i as u8; 100]);
    }
    // Empty now: a read returns nothing and the next wait blocks until its timeout.
    assert_eq!(rx.recv(&mut batch).unwrap(), 0);
    assert_eq!(batch.datagrams().count(), 0);
    let t = Instant::now();
    assert!(!rx.wait(Duration::from_millis(30)).unwrap());
    assert!(t.elapsed() >= Duration::from_millis(25), "{:?}", t.elapsed());
}

#[test]
fn a_read_is_one_batch_and_the_rest_stays_queued() {
    let mut rx = bound();
    let to = rx.local_addr().unwrap();
    let tx = sink();
    for i in 0..40u8 {
        tx.send_to(&[i; 10], to).unwrap();
    }
    assert!(rx.wait(Duration::from_secs(2)).unwrap());
    let mut batch = RecvBatch::allocate();
    let first = rx.recv(&mut batch).unwrap();
    assert_eq!(first, quinn_udp::BATCH_SIZE.min(40));
    // Still readable without a new arrival (edge-triggered readiness is not lost).
    assert!(rx.wait(Duration::ZERO).unwrap());
    rx.recv(&mut batch).unwrap();
    let rest: Vec<u8> = batch.datagrams().map(|(_, d)| d[0]).collect();
    assert_eq!(rest, (first as u8..40).collect::<Vec<_>>());
}

#[test]
fn sends_keep_order_and_boundaries_across_gso_trains() {
    let mut tx = bound();
    let (a, b) = (sink(), sink());
    let (to_a, to_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    // To a: five of 1200 then a shorter one (one train), then one longer (a new train);
    // to b: interleaved singles and a pair of equal size.
    let mut want_a = Vec::new();
    let mut want_b = Vec::new();
    for i in 0..5u8 {
        want_a.push(vec![i; 1200]);
    }
    want_a.push(vec![5; 300]);
    want_a.push(vec![6; 1300]);
    for d in &want_a[..6] {
        tx.send(to_a, d);
    }
    want_b.push(vec![7; 50]);
    tx.send(to_b, &want_b[0]);
    tx.send(to_a, &want_a[6]);
    for d in [vec![8; 200], vec![9; 200]] {
        tx.send(to_b, &d);
        want_b.push(d);
    }
    // Nothing may stay queued past a flush.
    tx.flush();
    assert_eq!(read_all(&a), want_a);
    assert_eq!(read_all(&b), want_b);
}

#[test]
fn a_short_batch_means_empty_and_the_next_datagram_wakes_the_wait() {
    let mut rx = bound();
    let to = rx.local_addr().unwrap();
    let tx = sink();
    for i in 0..3u8 {
        tx.send_to(&[i; 10], to).unwrap();
    }
    assert!(rx.wait(Duration::from_secs(2)).unwrap());
    let mut batch = RecvBatch::allocate();
    assert_eq!(rx.recv(&mut batch).unwrap(), 3);
    // Fewer than a batch: the socket was empty, so the wait blocks (no read to find out)…
    assert!(!rx.wait(Duration::from_millis(10)).unwrap());
    // …until a datagram comes, as the async side's one-byte wake-up does.
    tx.send_to(&[0xff], to).unwrap();
    let t = Instant::now();
    assert!(rx.wait(Duration::from_secs(2)).unwrap());
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(rx.recv(&mut batch).unwrap(), 1);
    assert_eq!(
        batch.datagrams().map(|(s, d)| (s, d.to_vec())).collect::<Vec<_>>(),
        [(tx.local_addr().unwrap(), vec![0xff])]
    );
}

#[test]
fn an_unreachable_peer_neither_fails_reads_nor_keeps_the_socket_readable() {
    let mut rx = bound();
    let to = rx.local_addr().unwrap();
    // A port nobody listens on: loopback answers with ICMP port unreachable.
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for _ in 0..10 {
        rx.send(closed, &[1; 100]);
        rx.flush();
    }
    let mut batch = RecvBatch::allocate();
    // The socket is unconnected and without IP_RECVERR: the ICMP errors are not reported, so
    // the loop neither spins on an error event nor logs one per send.
    let t = Instant::now();
    let mut woke = 0;
    while t.elapsed() < Duration::from_millis(100) {
        if rx.wait(Duration::from_millis(20)).unwrap() {
            woke += 1;
            assert_eq!(rx.recv(&mut batch).unwrap(), 0);
        }
    }
    assert!(woke <= 1, "woke {woke} times with nothing to read");
    // And a datagram still arrives.
    let tx = sink();
    tx.send_to(&[7; 10], to).unwrap();
    assert!(rx.wait(Duration::from_secs(2)).unwrap());
    assert_eq!(rx.recv(&mut batch).unwrap(), 1);
}

#[test]
fn a_flush_sends_every_single_datagram_past_a_bad_destination_and_past_the_call_limit() {
    let mut tx = bound();
    let sinks: Vec<UdpSocket> = (0..10).map(|_| sink()).collect();
    // An IPv6 destination on an IPv4 socket fails on its own (EAFNOSUPPORT/EINVAL).
    let bad: SocketAddr = "[::1]:9".parse().unwrap();
    // 1200 datagrams taking turns between ten destinations (no trains): more than one
    // `sendmmsg` takes, with a failing one near the start and another mid-run.
    for i in 0..1200u16 {
        if i == 3 || i == 700 {
            tx.send(bad, &[0; 10]);
        }
        let s = &sinks[usize::from(i) % sinks.len()];
        tx.send(s.local_addr().unwrap(), &i.to_be_bytes());
    }
    tx.flush();
    for (k, s) in sinks.iter().enumerate() {
        let got: Vec<u16> = read_all(s).iter().map(|d| u16::from_be_bytes([d[0], d[1]])).collect();
        let want: Vec<u16> = (0..1200u16).filter(|i| usize::from(*i) % sinks.len() == k).collect();
        assert_eq!(got, want, "sink {k}");
    }
}
