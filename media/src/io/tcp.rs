//! ICE-TCP (passive, RFC 6544) with RFC 4571 framing: each packet is prefixed by a 16-bit
//! length. Connections are plain tokio tasks that hand packets to the media thread.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc::unbounded_channel;
use tracing::{debug, warn};

use super::Command;
use super::udp::{TcpWriters, Waker};

/// Largest packet accepted on ICE-TCP (an RTP packet is ~1200 bytes).
const MAX_FRAME: usize = 2048;
const MAX_CONNECTIONS: usize = 4096;

/// Accept ICE-TCP connections forever. `advertised` is the TCP candidate address that the
/// media thread passes to str0m as the packets' destination.
pub async fn serve(
    listener: TcpListener,
    advertised: SocketAddr,
    commands: Sender<Command>,
    writers: TcpWriters,
    waker: Waker,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("ice-tcp accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            debug!(%peer, "ice-tcp connection refused: too many");
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = unbounded_channel::<Vec<u8>>();
        if let Ok(mut w) = writers.lock() {
            w.insert(peer, tx);
        }
        let writer_task = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
            }
        });
        let commands = commands.clone();
        let writers = writers.clone();
        let waker = waker.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_FRAME];
            loop {
                let mut len = [0u8; 2];
                if rd.read_exact(&mut len).await.is_err() {
                    break;
                }
                let n = u16::from_be_bytes(len) as usize;
                if n == 0 || n > MAX_FRAME {
                    let _ = commands.send(Command::TcpFramingError);
                    waker.wake();
                    break;
                }
                if rd.read_exact(&mut buf[..n]).await.is_err() {
                    break;
                }
                let cmd =
                    Command::TcpPacket { source: peer, destination: advertised, data: buf[..n].to_vec() };
                if commands.send(cmd).is_err() {
                    break;
                }
                waker.wake();
            }
            if let Ok(mut w) = writers.lock() {
                w.remove(&peer);
            }
            writer_task.abort();
            open.fetch_sub(1, Ordering::Relaxed);
            debug!(%peer, "ice-tcp connection closed");
        });
    }
}
