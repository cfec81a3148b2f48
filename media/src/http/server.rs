//! The HTTP accept loop (instead of `axum::serve`), bounded like ICE-TCP: anyone who can reach
//! the port can open connections, so each source address may hold a few, the total is capped
//! (the oldest connection that never sent a request makes room), a request head must arrive in
//! time (slowloris; also the idle keep-alive time), a transfer may not stall longer than that
//! (a client that never reads a large /metrics), and bodies are capped. TCP_NODELAY on each.
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::debug;

use crate::io::admission::{self, Admission, Held};
use crate::metrics::{DropReason, Metrics};

/// What HTTP connections may hold.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_per_source: usize,
    /// Time to send a complete request head (from accept, and after each response), and the
    /// longest a connection may go without a byte moving either way.
    pub request_timeout: Duration,
    pub max_body_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            max_per_source: 16,
            request_timeout: Duration::from_secs(5),
            max_body_bytes: 4096,
        }
    }
}

struct Conn {
    ip: IpAddr,
    opened: Instant,
    /// A request head arrived on it.
    requested: Arc<AtomicBool>,
    task: Option<AbortHandle>,
}

#[derive(Default)]
struct Table {
    conns: HashMap<SocketAddr, Conn>,
}

impl Table {
    /// Make room for a connection from `ip`; false when it must be refused.
    fn admit(&mut self, ip: IpAddr, limits: &HttpLimits, metrics: &Metrics) -> bool {
        let held = self.conns.iter().map(|(peer, c)| Held {
            peer: *peer,
            ip: c.ip,
            opened: c.opened.into_std(),
            proven: c.requested.load(Ordering::Relaxed),
        });
        let peer = match admission::admit(held, ip, limits.max_per_source, limits.max_connections) {
            Admission::Admit => return true,
            Admission::Refuse => return false,
            Admission::Evict(peer) => peer,
        };
        if let Some(c) = self.conns.remove(&peer) {
            c.task.iter().for_each(AbortHandle::abort);
        }
        metrics.count_drop(DropReason::HttpIdle);
        debug!(%peer, "http: oldest connection without a request evicted to make room");
        true
    }
}

pub async fn serve(listener: TcpListener, router: axum::Router, limits: HttpLimits, metrics: Arc<Metrics>) {
    let table = Arc::new(Mutex::new(Table::default()));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                debug!("http accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // One critical section from the check to the insert (see io/tcp.rs).
        let Ok(mut t) = table.lock() else { return };
        if !t.admit(peer.ip(), &limits, &metrics) {
            metrics.count_drop(DropReason::HttpRefused);
            debug!(%peer, "http connection refused: limit reached");
            continue;
        }
        // Replies are small and latency matters more than packing them (no Nagle).
        let _ = tcp.set_nodelay(true);
        let requested = Arc::new(AtomicBool::new(false));
        t.conns.insert(
            peer,
            Conn { ip: peer.ip(), opened: Instant::now(), requested: requested.clone(), task: None },
        );
        let (router, table_c, metrics) = (router.clone(), table.clone(), metrics.clone());
        let task = tokio::spawn(async move {
            connection(tcp, peer, router, limits, requested, &metrics).await;
            if let Ok(mut t) = table_c.lock() {
                t.conns.remove(&peer);
            }
        });
        if let Some(c) = t.conns.get_mut(&peer) {
            c.task = Some(task.abort_handle());
        }
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    limits: HttpLimits,
    requested: Arc<AtomicBool>,
    metrics: &Metrics,
) {
    let opened = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let io = Activity { inner: tcp, opened, last: activity.clone() };
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        requested.store(true, Ordering::Relaxed);
        let router = router.clone();
        async move { Ok::<_, std::convert::Infallible>(respond(router, req, limits.max_body_bytes).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        // Request heads are a few hundred bytes; hyper's minimum buffer is 8 KiB.
        .max_buf_size(8192)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    loop {
        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
        let deadline = opened + last + limits.request_timeout;
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        metrics.count_drop(DropReason::HttpIdle);
                    }
                    debug!(%peer, "http connection: {e}");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline) => {
                if Duration::from_millis(activity.load(Ordering::Relaxed)) == last {
                    metrics.count_drop(DropReason::HttpIdle);
                    debug!(%peer, "http connection stalled: closed");
                    return;
                }
            }
        }
    }
}

/// The router's answer, or 413 for a body over the limit (none of our endpoints takes one).
async fn respond(mut router: axum::Router, req: Request<Incoming>, max_body: u64) -> Response<Body> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body) {
        let mut r = Response::new(Body::from("request body too large"));
        *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        return r;
    }
    // Chunked bodies are cut at the limit for any handler that reads them.
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, max_body as usize)));
    match tower::Service::call(&mut router, req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// The socket, noting when a byte last moved (milliseconds since `opened`).
struct Activity {
    inner: TcpStream,
    opened: Instant,
    last: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        self.last.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Activity {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Activity {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
