//! Talking to bridges: scrape their Prometheus metrics for load, and ask one to drain.

use crate::autoscale::BridgeLoad;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// One client (and connection pool) for every scrape and drain: bridges are scraped every 5 s.
fn client() -> &'static HttpClient {
    static CLIENT: std::sync::OnceLock<HttpClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| Client::builder(TokioExecutor::new()).build_http())
}

/// The load a bridge reports on `/metrics`; all `None` when it does not answer in time.
pub async fn load(ip: &str, port: i32) -> BridgeLoad {
    let uri = format!("http://{ip}:{port}/metrics");
    let Ok(uri) = uri.parse::<hyper::Uri>() else { return BridgeLoad::default() };
    let fetch = async {
        let resp = client().get(uri).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    match tokio::time::timeout(TIMEOUT, fetch).await {
        Ok(Some(text)) => parse(&text),
        _ => BridgeLoad::default(),
    }
}

/// Pure: the bridge's load from its metrics text (metric names in media/src/metrics.rs).
pub fn parse(text: &str) -> BridgeLoad {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let Ok(scrape) = prometheus_parse::Scrape::parse(lines) else { return BridgeLoad::default() };
    let value = |name: &str| {
        scrape.samples.iter().find(|s| s.metric == name).and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
    };
    let bps = match (value("convene_bridge_bitrate_in_bps"), value("convene_bridge_bitrate_out_bps")) {
        (Some(i), Some(o)) => Some(i + o),
        _ => None,
    };
    BridgeLoad {
        endpoints: value("convene_bridge_endpoints").map(|v| v.max(0.0) as u64),
        conferences: value("convene_bridge_conferences").map(|v| v.max(0.0) as u64),
        mbps: bps.map(|b| b / 1e6),
        stress: value("convene_bridge_stress_level"),
        draining: value("convene_bridge_draining").is_some_and(|v| v > 0.0),
    }
}

/// `POST /drain` with the shard's bridge-control secret and the deadline after which signaling
/// should move the remaining calls. Returns whether the bridge accepted.
pub async fn drain(ip: &str, port: i32, secret: &str, deadline: std::time::Duration) -> bool {
    let url = format!("http://{ip}:{port}/drain?migrate_after_seconds={}", deadline.as_secs());
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

    #[test]
    fn parses_the_bridge_metrics() {
        let text = "# HELP convene_bridge_endpoints Endpoints\n# TYPE convene_bridge_endpoints gauge\nconvene_bridge_endpoints 42\n\
                    # TYPE convene_bridge_conferences gauge\nconvene_bridge_conferences 7\n\
                    # TYPE convene_bridge_bitrate_in_bps gauge\nconvene_bridge_bitrate_in_bps 25000000\n\
                    # TYPE convene_bridge_bitrate_out_bps gauge\nconvene_bridge_bitrate_out_bps 75000000\n\
                    # TYPE convene_bridge_stress_level gauge\nconvene_bridge_stress_level 0.25\n\
                    # TYPE convene_bridge_draining gauge\nconvene_bridge_draining 1\n";
        let l = parse(text);
        assert_eq!(l.endpoints, Some(42));
        assert_eq!(l.conferences, Some(7));
        assert_eq!(l.mbps, Some(100.0));
        assert_eq!(l.stress, Some(0.25));
        assert!(l.draining);
        assert!(l.known());
    }

    #[test]
    fn garbage_or_missing_metrics_are_unknown_not_idle() {
        assert!(!parse("not prometheus at all {{{").known());
        assert!(!parse("convene_bridge_endpoints 3\n").known(), "no bitrate: unknown");
    }
}
