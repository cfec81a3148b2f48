//! The pure part of the upload: which byte ranges go up as which parts, and the object keys.
use std::ops::Range;
use std::path::Path;

use super::super::sink::safe_file_stem;

/// S3's smallest part (all but the last part of a multipart upload).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// The full parts a growing file has beyond the `uploaded` bytes already sent as parts:
/// `[uploaded, uploaded + part)`, … while the file holds all of one. While recording only
/// these go up, so every part but the last has exactly `part` bytes.
pub fn full_parts(local_len: u64, uploaded: u64, part: u64) -> Vec<Range<u64>> {
    assert!(part > 0);
    let mut out = Vec::new();
    let mut at = uploaded;
    while local_len >= at + part {
        out.push(at..at + part);
        at += part;
    }
    out
}

/// How a file's upload ends once the file is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// No multipart upload was started and the file fits one part: one PUT of the whole file.
    Single,
    /// Multipart: send these ranges as the next parts (full parts, then the tail as the last
    /// part, never empty), then complete.
    Parts(Vec<Range<u64>>),
    /// The file is shorter than what was sent as parts (it was rewritten): start over.
    Restart,
}

/// The end of a file of `final_len` bytes of which `uploaded` were sent as parts
/// (`multipart`: an upload exists).
pub fn final_parts(final_len: u64, uploaded: u64, multipart: bool, part: u64) -> Final {
    if !multipart {
        if final_len <= part {
            return Final::Single;
        }
    } else if final_len < uploaded {
        return Final::Restart;
    }
    let from = if multipart { uploaded } else { 0 };
    let mut ranges = full_parts(final_len, from, part);
    let done = ranges.last().map_or(from, |r| r.end);
    if final_len > done {
        ranges.push(done..final_len);
    }
    Final::Parts(ranges)
}

/// The key prefix of the recording in `dir` (under the recorder's `root`):
/// `<shard>/<room path>/<start time>`, each part as [`safe_file_stem`] makes file names.
pub fn key_prefix(shard: &str, root: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    let mut parts = vec![safe_file_stem(shard)];
    for c in rel.components() {
        if let std::path::Component::Normal(s) = c {
            parts.push(safe_file_stem(&s.to_string_lossy()));
        }
    }
    parts.join("/")
}

/// Files that never go up: temporary names (the manifest's `manifest.json.tmp`, the
/// composer's `recording.webm.part`), hidden files.
pub fn skipped(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part")
}

/// Files that grow while recording and go up in parts as they do (the WebM files); every
/// other file goes up whole whenever it changed.
pub fn streamed(name: &str) -> bool {
    name.ends_with(".webm")
}

/// What moderators read of an S3 client error: S3's status, code and message out of the XML
/// body (`404 NoSuchBucket: The specified bucket does not exist`), else the innermost cause
/// (`tcp connect error: Connection refused (os error 111)`), without URLs and request ids.
pub fn short_cause(full: &str) -> String {
    let tag = |name: &str| {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let start = full.find(&open)? + open.len();
        Some(&full[start..start + full[start..].find(&close)?])
    };
    if let Some(code) = tag("Code") {
        let status = full.split("status code: ").nth(1).and_then(|s| s.split(':').next()).unwrap_or("");
        let status = status.split(' ').next().unwrap_or("");
        let message = tag("Message").map(|m| format!(": {m}")).unwrap_or_default();
        return format!("{status} {code}{message}").trim_start().to_string();
    }
    let tail = full.rsplit(" - ").next().unwrap_or(full);
    let tail = tail.strip_prefix("HTTP error: ").unwrap_or(tail);
    tail.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = MIN_PART_BYTES;

    #[test]
    fn full_parts_only_while_growing() {
        assert!(full_parts(P - 1, 0, P).is_empty());
        assert_eq!(full_parts(P, 0, P), vec![0..P]);
        assert_eq!(full_parts(3 * P + 7, 0, P), vec![0..P, P..2 * P, 2 * P..3 * P]);
        assert_eq!(full_parts(3 * P + 7, 2 * P, P), vec![2 * P..3 * P]);
        assert!(full_parts(2 * P - 1, P, P).is_empty());
    }

    #[test]
    fn the_end_of_a_file() {
        // Small files: one PUT.
        assert_eq!(final_parts(0, 0, false, P), Final::Single);
        assert_eq!(final_parts(P, 0, false, P), Final::Single);
        // Larger than a part but never started (the poll had not seen it): all of it.
        assert_eq!(final_parts(P + 1, 0, false, P), Final::Parts(vec![0..P, P..P + 1]));
        // Started: full parts left, then the tail as the last part.
        assert_eq!(final_parts(2 * P + 3, P, true, P), Final::Parts(vec![P..2 * P, 2 * P..2 * P + 3]));
        assert_eq!(final_parts(P + 3, P, true, P), Final::Parts(std::iter::once(P..P + 3).collect()));
        // Ends exactly on a part: no empty last part.
        assert_eq!(final_parts(2 * P, 2 * P, true, P), Final::Parts(vec![]));
        assert_eq!(final_parts(P, 2 * P, true, P), Final::Restart);
    }

    #[test]
    fn causes() {
        let xml = "Object at location k not found: Error performing PUT http://h/b/k in 8ms - Server \
                   returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error>\
                   <Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>\
                   <RequestId>x</RequestId></Error>";
        assert_eq!(short_cause(xml), "404 NoSuchBucket: The specified bucket does not exist");
        let down = "Generic S3 error: Error performing PUT http://h/b/k in 449ms, after 2 retries, \
                    max_retries: 2, retry_timeout: 60s  - HTTP error: error sending request: client error \
                    (Connect): tcp connect error: Connection refused (os error 111)";
        let cause = "error sending request: client error (Connect): tcp connect error: Connection \
                     refused (os error 111)";
        assert_eq!(short_cause(down), cause);
    }

    #[test]
    fn keys() {
        let root = Path::new("/recordings");
        let dir = Path::new("/recordings/acme/standup/2026-12-06T10-49-21.042Z");
        assert_eq!(key_prefix("eu-1", root, dir), "eu-1/acme/standup/2026-12-06T10-49-21.042Z");
        assert_eq!(key_prefix("a b", root, Path::new("/recordings/r/t")), "a_b/r/t");
        assert!(
            skipped("manifest.json.tmp")
                && skipped(".x")
                && skipped("recording.webm.part")
                && !skipped("manifest.json")
        );
        assert!(streamed("alice-v0.webm") && !streamed("manifest.json") && !streamed("chat.txt"));
    }
}
