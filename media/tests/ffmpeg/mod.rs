//! Real media for the recorder tests: ffmpeg encodes a lavfi source at test time and
//! matroska-demuxer reads its frames back (scripts/install-deps.sh installs ffmpeg).
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use matroska_demuxer::{Frame as DemuxFrame, MatroskaFile};

mod probe;
#[allow(unused_imports)] // each test uses its own subset
pub use probe::{Probe, decode_errors, probe, run};

/// One encoded frame, with its time in ms.
pub struct Encoded {
    pub ms: u64,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// A fresh directory `<tmp>/<prefix>-<name>-<pid>`.
pub fn tmpdir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Encode `seconds` of a lavfi source into `<dir>/<name>.webm` and read its frames; the first
/// is a keyframe (callers loop the clip).
pub fn encode(dir: &Path, name: &str, input: &str, seconds: u32, codec_args: &[&str]) -> Vec<Encoded> {
    let path = dir.join(format!("{name}.webm"));
    let seconds = seconds.to_string();
    let mut args = vec!["-v", "error", "-y", "-f", "lavfi", "-i", input, "-t", &seconds];
    args.extend_from_slice(codec_args);
    args.push(path.to_str().unwrap());
    run("ffmpeg", &args);
    let mut mkv = MatroskaFile::open(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(mkv.info().timestamp_scale().get(), 1_000_000);
    let mut frames = Vec::new();
    let mut f = DemuxFrame::default();
    while mkv.next_frame(&mut f).unwrap() {
        frames.push(Encoded {
            ms: f.timestamp,
            keyframe: f.is_keyframe.unwrap_or(false),
            data: f.data.clone(),
        });
    }
    assert!(frames.len() > 10, "{name}: only {} frames", frames.len());
    assert!(frames[0].keyframe, "{name} starts with a keyframe");
    frames
}
