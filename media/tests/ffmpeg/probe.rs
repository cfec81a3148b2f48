//! What ffprobe and ffmpeg say of a recorded file. Plain std + serde_json, so the e2e
//! recording test includes this same file (`#[path]`) rather than a copy.
#![allow(dead_code)]
use std::path::Path;
use std::process::{Command, Output};

/// Run a tool that must succeed.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is required (scripts/install-deps.sh installs ffmpeg): {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

pub struct Probe {
    pub codec: String,
    /// First to last packet end, from the packets themselves (a crashed file has no Duration).
    pub duration_s: f64,
    /// The Duration in Info (`-show_format`), only in a finished seekable file.
    pub format_duration_s: Option<f64>,
    pub frames_decoded: u64,
    pub height: Option<u64>,
}

/// ffprobe of the first stream, its packets and the format.
pub fn probe(path: &Path) -> Probe {
    let p = path.to_str().unwrap();
    let out = run(
        "ffprobe",
        &["-v", "error", "-count_frames", "-show_streams", "-show_format", "-show_packets", "-of", "json", p],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &json["streams"][0];
    let packets = json["packets"].as_array().unwrap();
    let t = |v: &serde_json::Value, k: &str| v[k].as_str().and_then(|s| s.parse::<f64>().ok());
    let first = t(&packets[0], "pts_time").unwrap();
    let last = packets.last().unwrap();
    let end = t(last, "pts_time").unwrap() + t(last, "duration_time").unwrap_or(0.0);
    Probe {
        codec: stream["codec_name"].as_str().unwrap().to_string(),
        duration_s: end - first,
        format_duration_s: t(&json["format"], "duration"),
        frames_decoded: stream["nb_read_frames"].as_str().unwrap().parse().unwrap(),
        height: stream["height"].as_u64(),
    }
}

/// `ffmpeg -v error -i F -f null -`: decodes everything; returns what it printed.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i", path.to_str().unwrap(), "-f", "null", "-"])
        .output()
        .expect("ffmpeg is required");
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}
