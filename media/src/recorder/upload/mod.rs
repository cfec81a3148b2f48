//! Upload to S3-compatible object storage while recording (`storage.s3`, issue 13).
//!
//! One [`Uploader`] task per recording, started with the recording, polls its directory
//! (`--s3-poll-ms`): a track file (`*.webm`, written as whole Clusters) goes up as a multipart
//! upload, one part as soon as the file holds a full part (`--s3-part-mib`, ≥ 5 MiB, S3's
//! minimum for all but the last part) beyond what went up; every other file
//! (`manifest.json`, `chat.txt`) is PUT whole whenever it changed. A lost pod therefore loses
//! at most the part being filled of each track (its parts stay in the bucket as an
//! unfinished multipart upload, the manifest as of the last poll next to it).
//!
//! [`Uploader::finish`], after the capture (and what follows it) ended: parts whose bytes
//! changed are sent again under the same part number (part 1, where the track writer patched
//! the Duration in on a clean stop: S3 keeps the last upload of a part number), the tail goes
//! up as the last part, every multipart upload is completed, a file smaller than a part is one
//! PUT, then the other files, `manifest.json` last. Then the local files are removed (the
//! pod's scratch space). Bounded: at most `--s3-parallel` parts in flight per recording, each
//! request retried `--s3-retries` times with exponential backoff, and the whole finish within
//! `--s3-finish-timeout-s`; a failure for good keeps the local files and becomes the
//! recording's [`ErrorCode::Upload`] failure, naming the object and S3's answer.
//!
//! A journal of the open uploads and their parts (`.uploads.json`, [`journal`]) goes up with
//! every new part, so the recorder that continues a lost pod's recording completes them.
//!
//! Object keys: `<shard>/<room path>/<start time>/<file>`, e.g.
//! `eu-1/acme/standup/2026-12-06T10-49-21.042Z/alice-v0.webm` (the recording directory's layout,
//! [`super::layout`], under the Shard's name); [`plan::key_prefix`].
pub mod journal;
pub mod objects;
pub mod plan;

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use convene_proto::recorder::{ErrorCode, Failure, env};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, MultipartId, ObjectStoreExt, PutPayload, RetryConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use plan::{Final, MIN_PART_BYTES};

use super::metrics::PendingBytes;

/// `convene-recorder`'s storage flags (flattened into its config). Uploading is on when
/// `--s3-endpoint` is set.
#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// The Shard whose rooms this recorder records: the first part of every object key.
    #[arg(long, env = env::SHARD, default_value = "default")]
    pub shard: String,
    /// S3-compatible endpoint URL (`https://s3.eu-west-1.amazonaws.com`, `http://minio:9000`);
    /// recordings upload there when it is set.
    #[arg(long, env = env::S3_ENDPOINT, requires = "s3_bucket")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = env::S3_BUCKET)]
    pub s3_bucket: Option<String>,
    #[arg(long, env = env::S3_REGION, default_value = "us-east-1")]
    pub s3_region: String,
    #[arg(long, env = env::S3_ACCESS_KEY_ID, hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = env::S3_SECRET_ACCESS_KEY, hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Part size in MiB (at least 5): what a lost pod can lose per track.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=1024))]
    pub s3_part_mib: u64,
    /// Milliseconds between looks at a recording's directory.
    #[arg(long, default_value_t = 2000)]
    pub s3_poll_ms: u64,
    /// Parts in flight per recording.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=32))]
    pub s3_parallel: u64,
    /// Retries of one request (exponential backoff from 200 ms).
    #[arg(long, default_value_t = 4)]
    pub s3_retries: usize,
    /// Seconds the upload may take after a recording stopped before it fails.
    #[arg(long, default_value_t = 120)]
    pub s3_finish_timeout_s: u64,
}

impl S3Args {
    /// The storage, when S3 is configured.
    pub fn storage(&self) -> anyhow::Result<Option<Storage>> {
        let (Some(endpoint), Some(bucket)) = (&self.s3_endpoint, &self.s3_bucket) else {
            return Ok(None);
        };
        let opts = Opts {
            part_bytes: self.s3_part_mib * 1024 * 1024,
            poll: Duration::from_millis(self.s3_poll_ms.max(50)),
            parallel: self.s3_parallel as usize,
            retries: self.s3_retries,
            finish_timeout: Duration::from_secs(self.s3_finish_timeout_s.max(1)),
        };
        let creds = match (&self.s3_access_key_id, &self.s3_secret_access_key) {
            (Some(k), Some(s)) => Some((k.as_str(), s.as_str())),
            _ => None,
        };
        Storage::new(endpoint, bucket, &self.s3_region, creds, &self.shard, opts).map(Some)
    }
}

/// How uploads run (see the module doc; [`S3Args`] for the defaults).
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// Bytes per part (at least [`MIN_PART_BYTES`]).
    pub part_bytes: u64,
    pub poll: Duration,
    pub parallel: usize,
    pub retries: usize,
    pub finish_timeout: Duration,
}

/// One bucket, shared by the recorder's uploads.
#[derive(Clone)]
pub struct Storage {
    store: Arc<AmazonS3>,
    bucket: String,
    shard: String,
    opts: Opts,
    /// Where uploads report the local bytes they have yet to send.
    pending: Option<prometheus::IntGauge>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("bucket", &self.bucket).field("shard", &self.shard).finish()
    }
}

impl Storage {
    /// An S3 client for `bucket` at `endpoint` (path-style requests; plain HTTP allowed for
    /// `http://` endpoints); `creds`: access key id and secret (else the environment's
    /// provider: web identity, instance metadata).
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        creds: Option<(&str, &str)>,
        shard: &str,
        opts: Opts,
    ) -> anyhow::Result<Storage> {
        anyhow::ensure!(opts.part_bytes >= MIN_PART_BYTES, "S3 parts are at least 5 MiB");
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: opts.retries,
            retry_timeout: Duration::from_secs(60),
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(60));
        // Client options first: allow_http is one of them.
        let mut b = AmazonS3Builder::new()
            .with_client_options(client)
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region(region)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .with_retry(retry);
        if let Some((id, secret)) = creds {
            b = b.with_access_key_id(id).with_secret_access_key(secret);
        }
        let store = b.build().map_err(|e| anyhow::anyhow!("S3 configuration: {e}"))?;
        Ok(Storage {
            store: Arc::new(store),
            bucket: bucket.into(),
            shard: shard.into(),
            opts,
            pending: None,
        })
    }

    /// Uploads add the bytes they have yet to send to `gauge` (the recorder's
    /// `upload_pending_bytes`), as of their last look at the directory.
    pub fn with_pending_gauge(mut self, gauge: prometheus::IntGauge) -> Storage {
        self.pending = Some(gauge);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Start uploading the recording in `dir` (under the recorder's `root`) as it is written.
    pub fn start(&self, root: &Path, dir: &Path) -> Uploader {
        let prefix = plan::key_prefix(&self.shard, root, dir);
        let location = format!("s3://{}/{prefix}/", self.bucket);
        let (stop, stop_rx) = oneshot::channel();
        let state = State {
            store: self.store.clone(),
            bucket: self.bucket.clone(),
            opts: self.opts,
            dir: dir.to_path_buf(),
            root: root.to_path_buf(),
            prefix,
            tracks: BTreeMap::new(),
            wholes: BTreeMap::new(),
            pending: self.pending.clone().map(PendingBytes::new),
            journaled: journal::Journal::default(),
        };
        let task = tokio::spawn(state.run(stop_rx));
        Uploader { stop: Some(stop), task: Some(task), location }
    }
}

/// One recording's upload, running until [`Uploader::finish`]; dropped without it (a lost
/// pod, as far as the bucket can tell), it stops where it is.
pub struct Uploader {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
    location: String,
}

impl Uploader {
    /// `s3://<bucket>/<shard>/<room>/<start time>/`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The recording's files are final: finish the upload (see the module doc). `Ok`: the
    /// location; the local files are gone.
    pub async fn finish(mut self) -> Result<String, Failure> {
        let (Some(stop), Some(task)) = (self.stop.take(), self.task.take()) else {
            return Err(upload_failure("the upload task is gone".into()));
        };
        let _ = stop.send(());
        match task.await {
            Ok(Ok(())) => Ok(self.location.clone()),
            Ok(Err(message)) => Err(upload_failure(message)),
            Err(e) => Err(upload_failure(format!("the upload task failed: {e}"))),
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

fn upload_failure(message: String) -> Failure {
    Failure { code: ErrorCode::Upload, message }
}

/// A part that went up: its S3 id and what it held.
#[derive(Debug, Clone)]
struct Part {
    id: PartId,
    range: Range<u64>,
    hash: u64,
}

/// A streamed file's multipart upload.
#[derive(Debug, Default)]
struct Track {
    upload: Option<MultipartId>,
    parts: Vec<Part>,
}

impl Track {
    fn uploaded(&self) -> u64 {
        self.parts.last().map_or(0, |p| p.range.end)
    }
}

/// What a file looked like when it was listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
}

struct State {
    store: Arc<AmazonS3>,
    bucket: String,
    opts: Opts,
    dir: PathBuf,
    root: PathBuf,
    prefix: String,
    tracks: BTreeMap<String, Track>,
    /// Files PUT whole, as last PUT.
    wholes: BTreeMap<String, Seen>,
    /// This upload's share of the pending-bytes gauge (gone with it).
    pending: Option<PendingBytes>,
    /// The journal as last PUT ([`journal`]).
    journaled: journal::Journal,
}

impl State {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) -> Result<(), String> {
        // The last failure logged: a store that is down is logged once, not every poll.
        let mut failing: Option<String> = None;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.opts.poll) => {}
            }
            // The stop cuts a look short (what it was sending goes again at the finish, under
            // the same part numbers), so the finish deadline bounds the time after the stop.
            let r = tokio::select! {
                _ = &mut stop => break,
                r = self.tick() => r,
            };
            match (r, &failing) {
                // Tried again at the next look, and for good at the finish.
                (Err(e), Some(f)) if *f == e => {}
                (Err(e), _) => {
                    warn!(dir = %self.dir.display(), "upload: {e} (trying again)");
                    failing = Some(e);
                }
                (Ok(()), Some(_)) => {
                    info!(dir = %self.dir.display(), "upload: going again");
                    failing = None;
                }
                (Ok(()), None) => {}
            }
        }
        let started = std::time::Instant::now();
        let done = tokio::time::timeout(self.opts.finish_timeout, self.finish()).await;
        let done = done.unwrap_or_else(|_| {
            Err(format!(
                "S3 upload to s3://{}/{}/ not done within {:?}",
                self.bucket, self.prefix, self.opts.finish_timeout
            ))
        });
        match done {
            Ok(files) => {
                if !self.journaled.is_empty() {
                    // Nothing is open any more: no recovery may touch these files.
                    let _ = self.store.delete(&self.key(journal::JOURNAL)).await;
                }
                let location = format!("s3://{}/{}/", self.bucket, self.prefix);
                let took_ms = started.elapsed().as_millis() as u64;
                info!(%location, files = files.len(), took_ms, "recording uploaded");
                self.remove_local(&files);
                Ok(())
            }
            Err(e) => {
                warn!(dir = %self.dir.display(), "upload failed, local files kept: {e}");
                Err(e)
            }
        }
    }

    /// What the directory holds: (name, seen), uploadable files only.
    fn list(&self) -> Result<Vec<(String, Seen)>, String> {
        let rd = std::fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut out = Vec::new();
        for e in rd.flatten() {
            let Ok(name) = e.file_name().into_string() else { continue };
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || plan::skipped(&name) {
                continue;
            }
            out.push((name, Seen { len: meta.len(), modified: meta.modified().ok() }));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn key(&self, name: &str) -> Key {
        Key::from(format!("{}/{name}", self.prefix))
    }

    fn refused(&self, what: &str, name: &str, e: impl Into<Cause>) -> String {
        format!("S3 refused {what} of s3://{}/{}/{name}: {}", self.bucket, self.prefix, e.into().0)
    }

    /// One look while recording: full parts of growing files, changed whole files.
    async fn tick(&mut self) -> Result<(), String> {
        let mut first_err = None;
        let files = self.list()?;
        for (name, seen) in files.iter().cloned() {
            let r = if plan::streamed(&name) {
                let uploaded = self.tracks.get(&name).map_or(0, Track::uploaded);
                let ranges = plan::full_parts(seen.len, uploaded, self.opts.part_bytes);
                self.send_parts(&name, ranges).await
            } else if self.wholes.get(&name) != Some(&seen) {
                self.put_whole(&name, seen).await
            } else {
                Ok(())
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        let pending = self.pending_bytes(&files);
        if let Some(p) = &mut self.pending {
            p.set(pending);
        }
        if let Err(e) = self.put_journal().await {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The open uploads and their parts into the bucket, when they changed.
    async fn put_journal(&mut self) -> Result<(), String> {
        let uploads = self.tracks.iter().filter_map(|(name, t)| {
            let open = journal::Open {
                upload_id: t.upload.clone()?,
                parts: t.parts.iter().map(|p| p.id.content_id.clone()).collect(),
                bytes: t.uploaded(),
            };
            (!open.parts.is_empty()).then(|| (name.clone(), open))
        });
        let j = journal::Journal { uploads: uploads.collect() };
        if j == self.journaled {
            return Ok(());
        }
        let body = serde_json::to_vec(&j).unwrap_or_default();
        self.store
            .put(&self.key(journal::JOURNAL), PutPayload::from(body))
            .await
            .map_err(|e| self.refused("the upload journal", journal::JOURNAL, e))?;
        self.journaled = j;
        Ok(())
    }

    /// Local bytes of `files` not in the bucket yet: the tail of each streamed file beyond its
    /// parts, and whole files that changed since their last PUT.
    fn pending_bytes(&self, files: &[(String, Seen)]) -> u64 {
        files
            .iter()
            .map(|(name, seen)| {
                if plan::streamed(name) {
                    seen.len.saturating_sub(self.tracks.get(name).map_or(0, Track::uploaded))
                } else if self.wholes.get(name) != Some(seen) {
                    seen.len
                } else {
                    0
                }
            })
            .sum()
    }

    /// Upload `ranges` of `name` as its next parts, `parallel` at a time.
    async fn send_parts(&mut self, name: &str, ranges: Vec<Range<u64>>) -> Result<(), String> {
        if ranges.is_empty() {
            return Ok(());
        }
        let key = self.key(name);
        let upload = match self.tracks.get(name).and_then(|t| t.upload.clone()) {
            Some(u) => u,
            None => {
                let u = self
                    .store
                    .create_multipart(&key)
                    .await
                    .map_err(|e| self.refused("starting the multipart upload", name, e))?;
                self.tracks.entry(name.into()).or_default().upload = Some(u.clone());
                u
            }
        };
        let first_idx = self.tracks.get(name).map_or(0, |t| t.parts.len());
        let jobs: Vec<(usize, Range<u64>)> =
            ranges.into_iter().enumerate().map(|(i, r)| (first_idx + i, r)).collect();
        let sent = self.put_parts(name, &key, &upload, jobs).await;
        let track = self.tracks.entry(name.into()).or_default();
        for r in sent {
            match r {
                Ok(p) => track.parts.push(p),
                // Parts stay contiguous: the rest goes again next time.
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Put parts `(index, range)`, `parallel` at a time; results in order (stopping at the
    /// first chunk with a failure).
    async fn put_parts(
        &self,
        name: &str,
        key: &Key,
        upload: &MultipartId,
        jobs: Vec<(usize, Range<u64>)>,
    ) -> Vec<Result<Part, String>> {
        let mut out = Vec::new();
        for chunk in jobs.chunks(self.opts.parallel.max(1)) {
            let puts = chunk.iter().map(|(idx, range)| self.put_part(name, key, upload, *idx, range.clone()));
            let results = futures_util::future::join_all(puts).await;
            let failed = results.iter().any(Result::is_err);
            out.extend(results);
            if failed {
                break;
            }
        }
        out
    }

    async fn put_part(
        &self,
        name: &str,
        key: &Key,
        upload: &MultipartId,
        idx: usize,
        range: Range<u64>,
    ) -> Result<Part, String> {
        let bytes = self.read(name, range.clone()).await?;
        let hash = hash(&bytes);
        let id = self
            .store
            .put_part(key, upload, idx, PutPayload::from(bytes))
            .await
            .map_err(|e| self.refused(&format!("part {}", idx + 1), name, e))?;
        debug!(file = name, part = idx + 1, bytes = range.end - range.start, "part uploaded");
        Ok(Part { id, range, hash })
    }

    async fn put_whole(&mut self, name: &str, seen: Seen) -> Result<(), String> {
        let bytes = self.read(name, 0..seen.len).await?;
        self.store
            .put(&self.key(name), PutPayload::from(bytes))
            .await
            .map_err(|e| self.refused("the upload", name, e))?;
        self.wholes.insert(name.into(), seen);
        Ok(())
    }

    /// `range` of the file `name` (off the async threads).
    async fn read(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>, String> {
        let path = self.dir.join(name);
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(range.start))?;
            let mut buf = vec![0; (range.end - range.start) as usize];
            f.read_exact(&mut buf)?;
            Ok(buf)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading {}/{name}: {e}", self.dir.display()))
    }

    /// After the capture: everything up, completed (see the module doc).
    /// `Ok`: the files that went up.
    async fn finish(&mut self) -> Result<Vec<String>, String> {
        let files = self.list()?;
        // Uploads of files that went away (renamed, deleted) are dropped.
        let gone: Vec<String> =
            self.tracks.keys().filter(|n| !files.iter().any(|(f, _)| f == *n)).cloned().collect();
        for name in gone {
            if let Some(Track { upload: Some(u), .. }) = self.tracks.remove(&name) {
                let _ = self.store.abort_multipart(&self.key(&name), &u).await;
            }
        }
        for (name, seen) in files.iter().filter(|(n, _)| plan::streamed(n)) {
            self.finish_track(name, *seen).await?;
        }
        // Whole files, the manifest last: once it is there, so is everything it names.
        let mut wholes: Vec<_> = files.iter().filter(|(n, _)| !plan::streamed(n)).collect();
        wholes.sort_by_key(|(n, _)| n == super::sink::MANIFEST_FILE);
        for (name, seen) in wholes {
            if self.wholes.get(name) != Some(seen) {
                self.put_whole(name, *seen).await?;
            }
        }
        Ok(files.into_iter().map(|(n, _)| n).collect())
    }

    async fn finish_track(&mut self, name: &str, seen: Seen) -> Result<(), String> {
        let key = self.key(name);
        let track = self.tracks.get(name);
        let multipart = track.is_some_and(|t| t.upload.is_some());
        let uploaded = track.map_or(0, Track::uploaded);
        match plan::final_parts(seen.len, uploaded, multipart, self.opts.part_bytes) {
            Final::Single => {
                let bytes = self.read(name, 0..seen.len).await?;
                self.store
                    .put(&key, PutPayload::from(bytes))
                    .await
                    .map_err(|e| self.refused("the upload", name, e))?;
                Ok(())
            }
            Final::Restart => {
                if let Some(Track { upload: Some(u), .. }) = self.tracks.remove(name) {
                    let _ = self.store.abort_multipart(&key, &u).await;
                }
                Box::pin(self.finish_track(name, seen)).await
            }
            Final::Parts(ranges) => {
                // Parts whose bytes changed since they went up (part 1: the Duration) go again.
                let sent = self.tracks.get(name).map(|t| t.parts.clone()).unwrap_or_default();
                let mut again = Vec::new();
                for (idx, p) in sent.iter().enumerate() {
                    if hash(&self.read(name, p.range.clone()).await?) != p.hash {
                        again.push((idx, p.range.clone()));
                    }
                }
                let parts_before = sent.len();
                self.send_parts(name, ranges).await?;
                let track = self.tracks.get(name).expect("a multipart upload");
                let upload = track.upload.clone().expect("a multipart upload");
                let mut parts = track.parts.clone();
                debug!(
                    file = name,
                    again = again.len(),
                    parts = parts.len(),
                    new = parts.len() - parts_before,
                    "completing"
                );
                let idxs: Vec<usize> = again.iter().map(|(idx, _)| *idx).collect();
                let results = self.put_parts(name, &key, &upload, again).await;
                let sent_again = results.len();
                for (idx, r) in idxs.iter().zip(results) {
                    parts[*idx] = r?;
                }
                // (put_parts stops early only after a failure, returned above.)
                debug_assert_eq!(sent_again, idxs.len());
                let ids = parts.iter().map(|p| p.id.clone()).collect();
                self.store
                    .complete_multipart(&key, &upload, ids)
                    .await
                    .map_err(|e| self.refused("completing the multipart upload", name, e))?;
                self.tracks.remove(name);
                Ok(())
            }
        }
    }

    /// Everything is in the bucket: the local copies go (the directory too, and the room's
    /// directories above it when they are empty).
    fn remove_local(&self, files: &[String]) {
        for name in files {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        let mut dir = self.dir.as_path();
        while dir.starts_with(&self.root) && dir != self.root && std::fs::remove_dir(dir).is_ok() {
            let Some(parent) = dir.parent() else { break };
            dir = parent;
        }
    }
}

/// An error with its causes (`: `-separated), for the moderators' message.
struct Cause(String);

impl From<object_store::Error> for Cause {
    fn from(e: object_store::Error) -> Cause {
        let mut s = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(c) = source {
            let text = c.to_string();
            if !s.contains(&text) {
                s = format!("{s}: {text}");
            }
            source = c.source();
        }
        debug!("S3: {s}");
        Cause(plan::short_cause(&s))
    }
}

impl From<&str> for Cause {
    fn from(s: &str) -> Cause {
        Cause(s.into())
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}
