//! Where a recording goes: one file per track and `manifest.json`. A trait so the session
//! stays free of paths (an upload buffer or a test's memory can stand in); [`DirSink`] writes
//! into a directory.
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub trait Sink {
    /// Seekable, so a cleanly finished file gets its Duration.
    type File: Write + Seek;
    /// A new track file (`name` is a plain file name).
    fn create(&mut self, name: &str) -> io::Result<Self::File>;
    /// Replace `manifest.json` whole: a reader (or a crash) never sees half of one.
    fn put_manifest(&mut self, json: &[u8]) -> io::Result<()>;
    /// Add `bytes` at the end of the text file `name` (created if new).
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
}

pub const MANIFEST_FILE: &str = "manifest.json";
/// The room's chat while recording, one message per line.
pub const CHAT_FILE: &str = "chat.txt";

/// Files in one directory; the manifest is written beside and renamed over the old one.
/// Counts the bytes it writes (all files; for the recorder's metrics).
#[derive(Debug, Clone)]
pub struct DirSink {
    dir: PathBuf,
    written: Arc<AtomicU64>,
}

impl DirSink {
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(DirSink { dir, written: Arc::default() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes written into the directory so far (by this sink and its files).
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

/// A track file of a [`DirSink`], counting what reaches it.
#[derive(Debug)]
pub struct DirFile {
    inner: BufWriter<File>,
    written: Arc<AtomicU64>,
}

impl Write for DirFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Seek for DirFile {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl Sink for DirSink {
    type File = DirFile;

    fn create(&mut self, name: &str) -> io::Result<Self::File> {
        // The writer hands over whole Clusters and flushes after each, so the buffer never
        // holds more than the Cluster being written.
        let inner = BufWriter::new(File::create(self.dir.join(name))?);
        Ok(DirFile { inner, written: self.written.clone() })
    }

    fn put_manifest(&mut self, json: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{MANIFEST_FILE}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(json)?;
        f.sync_data()?;
        std::fs::rename(&tmp, self.dir.join(MANIFEST_FILE))?;
        self.written.fetch_add(json.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        // One write per message: a crash leaves whole lines.
        std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(name))?.write_all(bytes)?;
        self.written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A file name made of `source` (an endpoint id chosen by clients): anything but
/// `[A-Za-z0-9._-]` becomes `_`, and it never starts with a dot.
pub fn safe_file_stem(source: &str) -> String {
    let mut s: String = source
        .chars()
        .take(128)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_stay_in_the_directory() {
        assert_eq!(safe_file_stem("alice-v0"), "alice-v0");
        assert_eq!(safe_file_stem("../x/y-a0"), "_.._x_y-a0");
        assert_eq!(safe_file_stem(""), "_");
        assert_eq!(safe_file_stem("ünï-v0"), "_n_-v0");
    }

    #[test]
    fn manifest_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("convene-sink-{}", std::process::id()));
        let mut s = DirSink::new(&dir).unwrap();
        s.put_manifest(b"{\"a\":1}").unwrap();
        s.put_manifest(b"{\"a\":2}").unwrap();
        assert_eq!(std::fs::read(dir.join(MANIFEST_FILE)).unwrap(), b"{\"a\":2}");
        assert!(!dir.join("manifest.json.tmp").exists());
        let mut f = s.create("t.webm").unwrap();
        f.write_all(b"x").unwrap();
        drop(f);
        assert_eq!(std::fs::read(dir.join("t.webm")).unwrap(), b"x");
        s.append(CHAT_FILE, b"a\n").unwrap();
        s.append(CHAT_FILE, b"b\n").unwrap();
        assert_eq!(std::fs::read(dir.join(CHAT_FILE)).unwrap(), b"a\nb\n");
        assert_eq!(s.bytes_written(), 7 + 7 + 1 + 4, "manifests, the track file, chat");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
