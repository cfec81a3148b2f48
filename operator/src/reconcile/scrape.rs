//! Talking to bridges and recorders: read their typed load reports, and ask one to drain.

use crate::autoscale::BridgeLoad;
use bytes::Bytes;
use convene_proto::load::LoadReport;
use convene_proto::paths;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// One client for every scrape and drain. No idle connection is kept: a bridge closes idle
/// keep-alive connections after its request timeout (5 s, the scrape period), and a request
/// sent on a connection it is closing fails, which would read as a silent bridge.
fn client() -> &'static HttpClient {
    static CLIENT: std::sync::OnceLock<HttpClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http())
}

/// The load a bridge reports on its typed load endpoint; all `None` when it does not answer in
/// time or answers something else.
pub async fn load(ip: &str, port: i32) -> BridgeLoad {
    match get(ip, port, paths::BRIDGE_LOAD).await {
        Some(body) => parse(&body),
        None => BridgeLoad::default(),
    }
}

/// The load a recorder reports; `None` when it does not answer in time or answers something else.
pub async fn recorder_load(ip: &str, port: i32) -> Option<convene_proto::recorder::RecorderLoad> {
    serde_json::from_slice(&get(ip, port, paths::RECORDER_LOAD).await?).ok()
}

/// A successful GET's body, within the timeout.
async fn get(ip: &str, port: i32, path: &str) -> Option<Bytes> {
    let uri = format!("http://{ip}:{port}{path}").parse::<hyper::Uri>().ok()?;
    let fetch = async {
        let resp = client().get(uri).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.into_body().collect().await.ok().map(|b| b.to_bytes())
    };
    tokio::time::timeout(TIMEOUT, fetch).await.ok().flatten()
}

/// Pure: the bridge's load from its JSON report (`convene_proto::load::LoadReport`).
pub fn parse(body: &[u8]) -> BridgeLoad {
    match serde_json::from_slice::<LoadReport>(body) {
        Ok(r) => BridgeLoad {
            endpoints: Some(r.endpoints),
            conferences: Some(r.conferences),
            mbps: Some(r.mbps()),
            stress: Some(r.stress),
            drain: r.drain,
            ice: r.ice,
        },
        Err(_) => BridgeLoad::default(),
    }
}

/// `POST /drain` with the shard's bridge-control secret and the deadline after which signaling
/// should move the remaining calls. Returns whether the bridge accepted.
pub async fn request_drain(ip: &str, port: i32, secret: &str, deadline: std::time::Duration) -> bool {
    post(paths::drain_url(&format!("http://{ip}:{port}"), deadline.as_secs()), secret).await
}

/// `POST /drain` to a recorder (the shard's bridge-control secret, as for bridges): it takes no
/// new recordings and lets its running ones end.
pub async fn request_recorder_drain(ip: &str, port: i32, secret: &str) -> bool {
    post(format!("http://{ip}:{port}{}", paths::RECORDER_DRAIN), secret).await
}

async fn post(url: String, secret: &str) -> bool {
    let Ok(req) = hyper::Request::post(url)
        .header("Authorization", format!("Bearer {secret}"))
        .body(Empty::<Bytes>::new())
    else {
        return false;
    };
    matches!(tokio::time::timeout(TIMEOUT, client().request(req)).await, Ok(Ok(r)) if r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use convene_proto::load::Drain;

    #[test]
    fn reads_the_bridge_load_report() {
        let report = LoadReport {
            endpoints: 42,
            conferences: 7,
            bitrate_in_bps: 25_000_000,
            bitrate_out_bps: 75_000_000,
            stress: 0.25,
            drain: Some(Drain { elapsed_ms: 1, deadline_ms: 2 }),
            ..Default::default()
        };
        let l = parse(serde_json::to_string(&report).unwrap().as_bytes());
        assert_eq!(l.endpoints, Some(42));
        assert_eq!(l.conferences, Some(7));
        assert_eq!(l.mbps, Some(100.0));
        assert_eq!(l.stress, Some(0.25));
        assert_eq!(l.drain, Some(Drain { elapsed_ms: 1, deadline_ms: 2 }));
        assert!(l.known());
        assert_eq!(l.ice, None, "a bridge that reports no ICE counts");
        let ice = convene_proto::load::IceCounts { connected: 5, relayed: 2, failed: 1 };
        let with = LoadReport { ice: Some(ice), ..report };
        assert_eq!(parse(serde_json::to_string(&with).unwrap().as_bytes()).ice, Some(ice));
    }

    #[test]
    fn garbage_or_missing_fields_are_unknown_not_idle() {
        assert!(!parse(b"not json at all {{{").known());
        assert!(!parse(br#"{"endpoints":3}"#).known(), "a partial report is unknown");
        assert!(!parse(b"convene_bridge_endpoints 3\n").known(), "Prometheus text is not the report");
    }
}
