//! `convene-recorder`'s command line / environment (names in `convene_proto::recorder::env`,
//! the bridge's config style).
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use convene_proto::bridge::common_env;
use convene_proto::recorder::env;

use crate::config::LogFormat;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "convene-recorder",
    version,
    about = "Convene recorder: records rooms as a bridge's hidden endpoint"
)]
pub struct RecorderConfig {
    /// Signaling's recorder-control WebSocket (`ws://…/recorder`).
    #[arg(long, env = env::SIGNALING_URL)]
    pub signaling_url: String,
    /// The bridge-control secret (bearer token towards signaling).
    #[arg(long, env = env::SECRET, hide_env_values = true)]
    pub secret: Option<String>,
    /// A file holding the secret (read once at start; trailing whitespace ignored).
    #[arg(long, env = env::SECRET_FILE, conflicts_with = "secret")]
    pub secret_file: Option<PathBuf>,
    /// Recorder identity (defaults to the host/pod name).
    #[arg(long, env = env::ID)]
    pub recorder_id: Option<String>,
    /// Where recordings go: `<dir>/<room>/<start time>/`.
    #[arg(long, env = env::RECORDING_DIR, default_value = "/recordings")]
    pub recordings_dir: PathBuf,
    /// Recordings at once (reported to signaling, which assigns no more).
    #[arg(long, env = env::MAX_RECORDINGS, default_value_t = 10)]
    pub capacity: u32,
    /// Local address of the recordings' UDP sockets.
    #[arg(long, env = env::BIND, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Address in the recorder's ICE candidates (default: the bind address, or when that is
    /// unspecified the default route's source address: a pod's IP).
    #[arg(long, env = env::ADVERTISE)]
    pub advertise_address: Option<IpAddr>,
    /// UDP ports for recordings, `first-last` (one per recording); default: ephemeral.
    #[arg(long, env = env::UDP_PORTS, value_parser = parse_ports)]
    pub udp_ports: Option<(u16, u16)>,
    /// Camera height to record: the simulcast layer at or below it (a source without one
    /// comes in its lowest layer).
    #[arg(long, env = env::VIDEO_HEIGHT, default_value_t = 360)]
    pub video_height: u32,
    /// HTTP port for `/health` and `/ready` (the pod's probes); 0: none.
    #[arg(long, env = env::HTTP_PORT, default_value_t = 8080)]
    pub http_port: u16,
    /// Seconds a recording may take to connect to its bridge before it fails.
    #[arg(long, default_value_t = 20)]
    pub connect_timeout_s: u64,
    #[arg(long, env = common_env::LOG_FORMAT, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// PEM CA bundle signaling's certificate must chain to (`wss://`); default: system roots.
    #[arg(long, env = env::CONTROL_CA_FILE)]
    pub control_ca_file: Option<PathBuf>,
    /// Milliseconds between pings to signaling (dead after three intervals without a read).
    #[arg(long, default_value_t = 10_000)]
    pub control_keepalive_ms: u64,
    /// Composition of `recording.webm` after each recording.
    #[command(flatten)]
    pub compose: super::compose::ComposeConfig,
    /// Upload to S3-compatible storage (`--s3-endpoint`, …).
    #[command(flatten)]
    pub s3: super::upload::S3Args,
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').ok_or("expected first-last")?;
    let (a, b): (u16, u16) =
        (a.trim().parse().map_err(|_| "bad port")?, b.trim().parse().map_err(|_| "bad port")?);
    if a == 0 || b < a {
        return Err("expected 1 <= first <= last".into());
    }
    Ok((a, b))
}

impl RecorderConfig {
    /// The secret, from the value or the file.
    pub fn secret(&self) -> anyhow::Result<Option<String>> {
        match (&self.secret, &self.secret_file) {
            (Some(s), _) => Ok(Some(s.clone())),
            (None, Some(f)) => {
                let s = std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("reading the secret file {}: {e}", f.display()))?;
                Ok(Some(s.trim_end().to_string()))
            }
            (None, None) => Ok(None),
        }
    }

    /// The address the recorder's candidates carry.
    pub fn advertised(&self) -> IpAddr {
        self.advertise_address.unwrap_or_else(|| crate::address::fallback_ip(self.bind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_addresses() {
        assert_eq!(parse_ports("40000-40009"), Ok((40000, 40009)));
        assert!(parse_ports("5-4").is_err() && parse_ports("0-4").is_err() && parse_ports("7").is_err());
        let c =
            RecorderConfig::parse_from(["r", "--signaling-url", "ws://s/recorder", "--bind", "127.0.0.1"]);
        assert_eq!(c.advertised().to_string(), "127.0.0.1");
        assert_eq!((c.capacity, c.udp_ports), (10, None));
        let c = RecorderConfig::parse_from(["r", "--signaling-url", "ws://s/recorder"]);
        assert!(!c.advertised().is_unspecified(), "0.0.0.0 is no candidate");
    }

    #[test]
    fn s3_storage_flags() {
        let base = ["r", "--signaling-url", "ws://s/recorder"];
        let c = RecorderConfig::parse_from(base);
        assert!(c.s3.storage().unwrap().is_none(), "no endpoint: no upload");
        assert_eq!((c.s3.shard.as_str(), c.s3.s3_part_mib), ("default", 8));
        let s3 = ["--s3-endpoint", "http://127.0.0.1:9", "--s3-bucket", "rec", "--shard", "eu-1"];
        let c = RecorderConfig::parse_from(base.iter().chain(&s3));
        assert_eq!(c.s3.storage().unwrap().expect("configured").bucket(), "rec");
        let small = base.iter().chain(&s3).chain(&["--s3-part-mib", "4"]);
        assert!(RecorderConfig::try_parse_from(small).is_err(), "S3 parts are at least 5 MiB");
        let no_bucket = base.iter().chain(&["--s3-endpoint", "http://x"]);
        assert!(RecorderConfig::try_parse_from(no_bucket).is_err());
    }
}
