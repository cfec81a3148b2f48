//! Configuration: the YAML file the operator renders (`convene_proto::config::SignalingConfig`,
//! camelCase), with flag/env overrides for local runs. Secrets are files, read once at start
//! and trimmed.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
pub use convene_proto::config::{SignalingConfig, WebConfig};

#[derive(Parser, Debug, Clone, Default)]
#[command(name = "convene-signaling", version, about = "Convene signaling, focus and web app")]
pub struct Args {
    /// Configuration file (camelCase YAML, as rendered by the operator).
    #[arg(long, env = "CONVENE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address (overrides `listen`).
    #[arg(long, env = "CONVENE_LISTEN")]
    pub listen: Option<String>,
    /// Public URL printed and used by the web app (overrides `publicUrl`).
    #[arg(long, env = "CONVENE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Bridge control secret (overrides `bridgeSecretFile`).
    #[arg(long, env = "CONVENE_BRIDGE_SECRET", hide_env_values = true)]
    pub bridge_secret: Option<String>,
    /// Region of this shard (overrides `region`).
    #[arg(long, env = "CONVENE_REGION")]
    pub region: Option<String>,
    /// TURN URIs, comma separated (with --turn-secret, overrides `turn`).
    #[arg(long, env = "CONVENE_TURN_URIS", value_delimiter = ',')]
    pub turn_uris: Vec<String>,
    /// TURN REST shared secret.
    #[arg(long, env = "CONVENE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// JWT algorithm (HS256, RS256, ES256); with --jwt-key-file enables JWT auth.
    #[arg(long, env = "CONVENE_JWT_ALGORITHM")]
    pub jwt_algorithm: Option<String>,
    #[arg(long, env = "CONVENE_JWT_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,
    #[arg(long, env = "CONVENE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    #[arg(long, env = "CONVENE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Allow guests (no token) into rooms that exist.
    #[arg(long, env = "CONVENE_ALLOW_GUESTS")]
    pub allow_guests: Option<bool>,
    /// Allow anyone without a token to create rooms.
    #[arg(long, env = "CONVENE_ALLOW_ANONYMOUS_ROOM_CREATION")]
    pub allow_anonymous_room_creation: Option<bool>,
    /// Enable the lobby in new rooms.
    #[arg(long, env = "CONVENE_LOBBY_BY_DEFAULT")]
    pub lobby_by_default: Option<bool>,
    /// Endpoints per bridge above which no conference is placed on it.
    #[arg(long, env = "CONVENE_BRIDGE_CAPACITY")]
    pub bridge_capacity: Option<u64>,
    /// Seconds after which a bridge that sent nothing is stale (and its conferences move).
    #[arg(long, env = "CONVENE_BRIDGE_STALE_SECONDS")]
    pub bridge_stale_seconds: Option<u64>,
    /// Seconds a connection may stay without joining a room (overrides `joinTimeoutSeconds`).
    #[arg(long, env = "CONVENE_JOIN_TIMEOUT_SECONDS")]
    pub join_timeout_seconds: Option<u64>,
    /// Seconds a client may send nothing, pings included (overrides `idleTimeoutSeconds`).
    #[arg(long, env = "CONVENE_IDLE_TIMEOUT_SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Connections not in a room per source address; 0: no limit
    /// (overrides `maxUnauthenticatedPerAddress`).
    #[arg(long, env = "CONVENE_MAX_UNAUTHENTICATED_PER_ADDRESS")]
    pub max_unauthenticated_per_address: Option<u32>,
    /// Frames queued for one connection before it is closed (overrides `maxQueuedFrames`).
    #[arg(long, env = "CONVENE_MAX_QUEUED_FRAMES")]
    pub max_queued_frames: Option<usize>,
    /// Bytes queued for one connection before it is closed (overrides `maxQueuedBytes`).
    #[arg(long, env = "CONVENE_MAX_QUEUED_BYTES")]
    pub max_queued_bytes: Option<usize>,
    /// Trusted reverse proxies, comma-separated CIDRs (overrides `trustedProxies`).
    #[arg(long, env = "CONVENE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// PEM certificate chain: serve HTTPS/WSS (with --tls-key; overrides `tls`).
    #[arg(long, env = "CONVENE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// A second, plain-HTTP listener (same routes) for what stays inside the host or cluster
    /// when signaling terminates TLS itself: bridges (`ws://…/bridge`), probes, metrics. Never
    /// expose it.
    #[arg(long, env = "CONVENE_INTERNAL_LISTEN")]
    pub internal_listen: Option<String>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CONVENE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Write a self-signed certificate for these comma-separated names to --tls-cert/--tls-key,
    /// print its SHA-256 fingerprint and exit (local runs: `TLS=1 run-local.sh`).
    #[arg(long, value_delimiter = ',')]
    pub self_signed: Vec<String>,
    /// `text` or `json`.
    #[arg(long, env = "CONVENE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Resolved JWT settings (key material loaded).
#[derive(Clone)]
pub struct JwtSettings {
    pub algorithm: String,
    pub issuer: String,
    pub audience: String,
    /// HS256 secret bytes or PEM text of one or more public keys.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("algorithm", &self.algorithm)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct TurnSettings {
    pub uris: Vec<String>,
    pub secret: String,
    pub lifetime_seconds: i64,
}

/// Everything the server needs, resolved.
#[derive(Clone)]
pub struct Settings {
    pub domain: String,
    pub public_url: String,
    pub listen: String,
    pub region: Option<String>,
    pub bridge_secret: String,
    pub jwt: Option<JwtSettings>,
    pub allow_guests: bool,
    pub allow_anonymous_room_creation: bool,
    pub lobby_by_default: bool,
    pub web: WebConfig,
    pub turn: Option<TurnSettings>,
    pub recording: bool,
    pub bridge_capacity: u64,
    pub bridge_stale_seconds: u64,
    pub limits: Limits,
    /// (certificate chain, private key) PEM files.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// What an unauthenticated or misbehaving peer may cost us.
#[derive(Clone, Debug)]
pub struct Limits {
    pub join_timeout: Duration,
    pub idle_timeout: Duration,
    /// 0: no limit.
    pub max_unauthenticated_per_address: u32,
    pub max_queued_frames: usize,
    pub max_queued_bytes: usize,
    pub trusted_proxies: Vec<crate::net::Cidr>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            join_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_unauthenticated_per_address: 32,
            max_queued_frames: 2048,
            max_queued_bytes: 4 << 20,
            trusted_proxies: vec![],
        }
    }
}

fn read_secret(path: &str) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path).with_context(|| format!("reading secret file {path}"))?;
    Ok(s.trim().to_string())
}

impl Settings {
    pub fn load(args: &Args) -> anyhow::Result<Settings> {
        Self::resolve(load_file(args)?, args)
    }

    pub fn resolve(file: SignalingConfig, args: &Args) -> anyhow::Result<Settings> {
        let listen = args.listen.clone().unwrap_or(if file.listen.is_empty() {
            "0.0.0.0:8080".to_string()
        } else {
            file.listen.clone()
        });
        let bridge_secret = match (&args.bridge_secret, &file.bridge_secret_file) {
            (Some(s), _) => s.trim().to_string(),
            (None, Some(f)) => read_secret(f)?,
            (None, None) => bail!("no bridge secret: set bridgeSecretFile or --bridge-secret"),
        };
        if bridge_secret.is_empty() {
            bail!("the bridge secret is empty");
        }
        let jwt_flags = args.jwt_algorithm.is_some()
            || args.jwt_key_file.is_some()
            || args.jwt_issuer.is_some()
            || args.jwt_audience.is_some();
        if jwt_flags
            && (args.jwt_algorithm.is_none() || args.jwt_key_file.is_none())
            && file.auth.jwt.is_none()
        {
            // A half-configured JWT must not quietly leave the shard open.
            bail!("JWT needs both --jwt-algorithm and --jwt-key-file");
        }
        let jwt = match (&args.jwt_algorithm, &args.jwt_key_file, &file.auth.jwt) {
            (Some(alg), Some(key), _) => Some(JwtSettings {
                algorithm: alg.clone(),
                issuer: args.jwt_issuer.clone().unwrap_or_default(),
                audience: args.jwt_audience.clone().unwrap_or_default(),
                key: read_secret(&key.to_string_lossy())?.into_bytes(),
            }),
            (_, _, Some(j)) => Some(JwtSettings {
                algorithm: j.algorithm.as_str().to_string(),
                issuer: j.issuer.clone(),
                audience: j.audience.clone(),
                key: read_secret(&j.key_file)?.into_bytes(),
            }),
            _ => None,
        };
        if let Some(j) = &jwt {
            crate::auth::Verifier::new(j).context("JWT settings")?;
        }
        let turn = if let (false, Some(secret)) = (args.turn_uris.is_empty(), &args.turn_secret) {
            Some(TurnSettings {
                uris: args.turn_uris.clone(),
                secret: secret.clone(),
                lifetime_seconds: 86400,
            })
        } else if let Some(t) = &file.turn {
            Some(TurnSettings {
                uris: t.uris.clone(),
                secret: read_secret(&t.secret_file)?,
                lifetime_seconds: if t.credential_lifetime_seconds > 0 {
                    t.credential_lifetime_seconds
                } else {
                    86400
                },
            })
        } else {
            None
        };
        let public_url = args.public_url.clone().unwrap_or(file.public_url.clone());
        let d = Limits::default();
        let secs =
            |a: Option<u64>, f: Option<u64>, d: Duration| a.or(f).map(Duration::from_secs).unwrap_or(d);
        let proxies =
            if args.trusted_proxies.is_empty() { &file.trusted_proxies } else { &args.trusted_proxies };
        let limits = Limits {
            join_timeout: secs(args.join_timeout_seconds, file.join_timeout_seconds, d.join_timeout),
            idle_timeout: secs(args.idle_timeout_seconds, file.idle_timeout_seconds, d.idle_timeout),
            max_unauthenticated_per_address: args
                .max_unauthenticated_per_address
                .or(file.max_unauthenticated_per_address)
                .unwrap_or(d.max_unauthenticated_per_address),
            max_queued_frames: args
                .max_queued_frames
                .or(file.max_queued_frames)
                .unwrap_or(d.max_queued_frames)
                .max(1),
            max_queued_bytes: args
                .max_queued_bytes
                .or(file.max_queued_bytes)
                .unwrap_or(d.max_queued_bytes)
                .max(1),
            trusted_proxies: proxies
                .iter()
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.parse().map_err(|e| anyhow::anyhow!("trusted proxy {p:?}: {e}")))
                .collect::<anyhow::Result<_>>()?,
        };
        let tls = match (&args.tls_cert, &args.tls_key, &file.tls) {
            (Some(c), Some(k), _) => Some((c.clone(), k.clone())),
            (Some(_), None, _) | (None, Some(_), _) => bail!("--tls-cert and --tls-key go together"),
            (None, None, Some(t)) => Some((PathBuf::from(&t.cert_file), PathBuf::from(&t.key_file))),
            (None, None, None) => None,
        };
        // Secure by default: once any JWT setting is given (flag, env or file), anonymous room
        // creation is off unless explicitly enabled. Guests may still join rooms that exist.
        let allow_anonymous_room_creation = args
            .allow_anonymous_room_creation
            .or(file.auth.allow_anonymous_room_creation)
            .unwrap_or(jwt.is_none());
        let allow_guests = args.allow_guests.or(file.auth.allow_guests).unwrap_or(true);
        Ok(Settings {
            domain: if file.domain.is_empty() { "localhost".into() } else { file.domain.clone() },
            public_url,
            listen,
            region: args.region.clone().or(file.region.clone()),
            bridge_secret,
            allow_guests,
            allow_anonymous_room_creation,
            jwt,
            lobby_by_default: args.lobby_by_default.unwrap_or(file.lobby_by_default),
            web: file.web.clone(),
            turn,
            recording: file.recording,
            bridge_capacity: args.bridge_capacity.or(file.bridge_capacity).unwrap_or(500),
            bridge_stale_seconds: args.bridge_stale_seconds.or(file.bridge_stale_seconds).unwrap_or(15),
            limits,
            tls,
        })
    }
}

/// The config file `--config` names (defaults without one).
pub fn load_file(args: &Args) -> anyhow::Result<SignalingConfig> {
    match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
            parse_file(&text)
        }
        None => Ok(SignalingConfig::default()),
    }
}

pub fn parse_file(text: &str) -> anyhow::Result<SignalingConfig> {
    serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("invalid config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_rendering() {
        // Also a seed of the signaling_config fuzz target (fuzz/src/seeds.rs).
        let yaml = include_str!("testdata/config-full.yaml");
        let f = parse_file(yaml).unwrap();
        assert_eq!(f.domain, "meet.example.org");
        assert_eq!(f.auth.jwt.as_ref().unwrap().algorithm, convene_proto::config::JwtAlgorithm::HS256);
        assert_eq!(f.auth.allow_anonymous_room_creation, Some(false));
        assert!(f.web.start_audio_muted);
        assert_eq!(f.turn.unwrap().credential_lifetime_seconds, 3600);
        let null_auth = parse_file("domain: x\nauth:\n  jwt: null\n  allowGuests: true\n  allowAnonymousRoomCreation: true\nturn: null\n").unwrap();
        assert!(null_auth.auth.jwt.is_none());
    }
}
