//! The recorder's S3 upload (issue 13, `storage.s3`) against a real S3-compatible server:
//! moto's server from PyPI (`scripts/s3-server.sh` installs it into the cache), started by each
//! test on 127.0.0.1 with a free port. Never a mocked client.
//!
//! The recording directory is written by the real track writer over time (real VP8 frames
//! that ffmpeg encodes at test time), as a recording writes it.
mod ffmpeg;

use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convene_media::recorder::finish;
use convene_media::recorder::run::Ended;
use convene_media::recorder::upload::{Opts, Storage, Uploader};
use convene_media::recorder::{Codec, Frame, TrackWriter};
use convene_proto::recorder::{ErrorCode, Failure, FromRecorder};
use ffmpeg::{Encoded, encode, probe, tmpdir};
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;

const MIB: u64 = 1024 * 1024;
const PART: u64 = 5 * MIB;
const START: &str = "2026-12-06T10-49-21.042Z";

/// A moto server on 127.0.0.1, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("CONVENE_MOTO_SERVER") {
        return p.into();
    }
    let cache = std::env::var_os("CONVENE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/convene"));
    cache.join("moto-5.2.5/bin/moto_server")
}

impl Moto {
    fn start() -> Moto {
        Moto::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Moto {
        let bin = moto_server();
        assert!(
            bin.exists(),
            "{} is missing: the S3 tests need moto's server; install it with scripts/s3-server.sh \
             (or point CONVENE_MOTO_SERVER at a moto_server)",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Listening, and it is ours: a server that failed to bind (the port taken meanwhile)
        // has exited, and something else answered.
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto_server exited ({status}) while port {port} answered");
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An unsigned request (moto does not check signatures unless told to).
    fn http(&self, method: &str, path: &str) -> (u16, Vec<u8>) {
        http(self.port, method, path)
    }

    fn create_bucket(&self, bucket: &str) {
        let (status, body) = self.http("PUT", &format!("/{bucket}"));
        assert_eq!(status, 200, "create bucket: {}", String::from_utf8_lossy(&body));
    }

    /// An object, through a signed client (moto refuses anonymous reads of private objects).
    async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let store = AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap();
        match store.get(&object_store::path::Path::from(key)).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("GET {key}: {e}"),
        }
    }

    /// The parts of the unfinished multipart upload of `key`: their sizes.
    fn parts(&self, bucket: &str, key: &str) -> Vec<u64> {
        let (_, body) = self.http("GET", &format!("/{bucket}?uploads"));
        let list = String::from_utf8_lossy(&body).into_owned();
        let mut sizes = Vec::new();
        for upload in list.split("<Upload>").skip(1) {
            if tag(upload, "Key").as_deref() != Some(key) {
                continue;
            }
            let id = tag(upload, "UploadId").unwrap();
            let (_, body) = self.http("GET", &format!("/{bucket}/{key}?uploadId={id}"));
            let parts = String::from_utf8_lossy(&body).into_owned();
            for p in parts.split("<Part>").skip(1) {
                sizes.push(tag(p, "Size").unwrap().parse().unwrap());
            }
        }
        sizes
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

/// HTTP/1.1 with `Connection: close`: status and body (chunked or not).
fn http(port: u16, method: &str, path: &str) -> (u16, Vec<u8>) {
    // moto's server can refuse for a moment right after it first listened (CI saw one
    // ConnectionRefused on the first request of a test); a few retries, then fail.
    let mut tries = 0;
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("connecting to moto on {port}: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        let (mut out, mut rest) = (Vec::new(), &body[..]);
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 4 + n..];
        }
        body = out;
    }
    (status, body)
}

fn opts() -> Opts {
    Opts {
        part_bytes: PART,
        poll: Duration::from_millis(200),
        parallel: 2,
        retries: 2,
        finish_timeout: Duration::from_secs(20),
    }
}

fn storage(endpoint: &str, bucket: &str) -> Storage {
    Storage::new(endpoint, bucket, "us-east-1", Some(("test", "test")), "eu-1", opts()).unwrap()
}

/// `<root>/acme/standup/<start>/`, as the recorder lays it out.
fn recording_dir(name: &str) -> (PathBuf, PathBuf) {
    let root = tmpdir("convene-s3", name);
    let dir = root.join("acme/standup").join(START);
    std::fs::create_dir_all(&dir).unwrap();
    (root, dir)
}

const PREFIX: &str = "eu-1/acme/standup/2026-12-06T10-49-21.042Z";

/// Noise, so the frames are large (~70 kB): a few MiB per second of recording.
fn noise_frames(dir: &Path) -> Vec<Encoded> {
    encode(
        dir,
        "noise",
        "nullsrc=s=320x240:r=30,geq=lum='random(1)*255':cb=128:cr=128",
        2,
        &[
            "-c:v",
            "libvpx",
            "-g",
            "10",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "50M",
            "-qmin",
            "0",
            "-qmax",
            "4",
        ],
    )
}

/// A track file written by the real writer, a few frames at a time with pauses, as a
/// recording writes it: until it holds `bytes`.
struct Writing {
    w: TrackWriter<BufWriter<std::fs::File>>,
    path: PathBuf,
    n: usize,
}

impl Writing {
    fn new(dir: &Path, name: &str) -> Writing {
        let path = dir.join(name);
        let w = TrackWriter::new(BufWriter::new(std::fs::File::create(&path).unwrap()), Codec::Vp8, 1);
        Writing { w, path, n: 0 }
    }

    fn len(&self) -> u64 {
        std::fs::metadata(&self.path).unwrap().len()
    }

    async fn write_until(&mut self, frames: &[Encoded], bytes: u64) {
        let clip_ms = frames.last().unwrap().ms + 33;
        while self.len() < bytes {
            let f = &frames[self.n % frames.len()];
            let ms = f.ms + (self.n / frames.len()) as u64 * clip_ms;
            let frame = Frame {
                rtp_time: (ms * 90) as u32,
                clock_rate: 90_000,
                keyframe: f.keyframe,
                contiguous: true,
                data: &f.data,
            };
            self.w.write(&frame).unwrap();
            self.n += 1;
            if self.n.is_multiple_of(10) {
                self.w.flush().unwrap();
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
    }

    fn finish(self) -> PathBuf {
        self.w.finish_seekable().unwrap();
        self.path
    }
}

/// What the capture hands the post-capture steps ([`finish::finish`], which finishes the upload).
fn ended(dir: &Path, error: Option<Failure>) -> Ended {
    Ended {
        recording: "r1".into(),
        conference: "acme/standup".into(),
        dir: dir.into(),
        segment: 1,
        handoff: false,
        files: 2,
        error,
    }
}

/// Wait (bounded) until `f` holds.
async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_go_up_while_recording_and_the_upload_completes_within_seconds_of_stop() {
    let moto = Moto::start();
    moto.create_bucket("rec");
    let (root, dir) = recording_dir("live");
    let frames = noise_frames(&root);
    std::fs::write(dir.join("manifest.json"), b"{\"v\":1}").unwrap();

    let uploader: Uploader = storage(&moto.endpoint(), "rec").start(&root, &dir);
    assert_eq!(uploader.location(), format!("s3://rec/{PREFIX}/"));
    let mut video = Writing::new(&dir, "alice-v0.webm");
    let mut audio = Writing::new(&dir, "alice-a0.webm");
    let t = Instant::now();
    let key = format!("{PREFIX}/alice-v0.webm");
    // While recording: a part as soon as the file holds one, the manifest as it is.
    video.write_until(&frames, 6 * MIB).await;
    until("part 1 uploaded while recording", 10, || moto.parts("rec", &key).len() == 1).await;
    video.write_until(&frames, 12 * MIB).await;
    audio.write_until(&frames[..3], 1000).await;
    let written_s = t.elapsed().as_secs_f64();
    until("part 2 uploaded while recording", 10, || moto.parts("rec", &key).len() == 2).await;
    assert_eq!(moto.parts("rec", &key), vec![PART, PART]);
    assert_eq!(moto.get("rec", &format!("{PREFIX}/manifest.json")).await.unwrap(), b"{\"v\":1}");
    assert!(moto.get("rec", &key).await.is_none(), "no object before the stop");

    // Stop: the writer patches the Duration into the head (part 1), the manifest changes.
    let video = video.finish();
    let audio = audio.finish();
    std::fs::write(dir.join("manifest.json"), b"{\"v\":2}").unwrap();
    let expected = std::fs::read(&video).unwrap();
    let expected_audio = std::fs::read(&audio).unwrap();
    let stopped = Instant::now();
    let finished = finish::finish(ended(&dir, None), Some(uploader)).await;
    let took = stopped.elapsed();
    let FromRecorder::Finished { location, error: None, files: 2, .. } = finished else {
        panic!("{finished:?}")
    };
    eprintln!(
        "wrote {} MiB in {written_s:.1} s; upload finished {} ms after stop",
        expected.len() as u64 / MIB,
        took.as_millis()
    );
    assert!(took < Duration::from_secs(5), "the upload finished {took:?} after the stop");
    assert_eq!(location, format!("s3://rec/{PREFIX}/"));

    let got = moto.get("rec", &key).await.expect("the video object");
    assert!(got == expected, "the object is the final file ({} vs {} bytes)", got.len(), expected.len());
    assert_eq!(moto.get("rec", &format!("{PREFIX}/alice-a0.webm")).await.unwrap(), expected_audio);
    assert_eq!(moto.get("rec", &format!("{PREFIX}/manifest.json")).await.unwrap(), b"{\"v\":2}");
    assert!(moto.parts("rec", &key).is_empty(), "the multipart upload is complete");
    assert!(moto.get("rec", &format!("{PREFIX}/.uploads.json")).await.is_none(), "no journal once finished");
    assert!(!root.join("acme").exists(), "the local files and directories are gone");

    let copy = root.join("downloaded.webm");
    std::fs::write(&copy, &got).unwrap();
    let p = probe(&copy);
    assert_eq!(p.codec, "vp8");
    let duration = p.format_duration_s.expect("the Duration in Info (part 1 sent again)");
    assert!(duration > 5.0 && (duration - p.duration_s).abs() < 0.1, "{duration} vs {}", p.duration_s);
    let _ = std::fs::remove_dir_all(&root);
}

/// A pod lost mid-recording: its full parts are in the bucket, and the recorder that
/// continues the recording completes them from the journal into a file that plays up to the
/// last part (it waits for the lost one's deadline first, and completes once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_pod_loses_at_most_one_part() {
    let moto = Moto::start();
    moto.create_bucket("rec");
    let (root, dir) = recording_dir("lost");
    let frames = noise_frames(&root);
    let store = storage(&moto.endpoint(), "rec");
    let uploader = store.start(&root, &dir);
    let mut video = Writing::new(&dir, "bob-v0.webm");
    video.write_until(&frames, 13 * MIB).await;
    let key = format!("{PREFIX}/bob-v0.webm");
    let written = video.len();
    until("all full parts uploaded", 10, || moto.parts("rec", &key).iter().sum::<u64>() + PART > written)
        .await;
    // The pod is gone: no finish, no Duration, no completion.
    drop(uploader);
    drop(video);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let parts = moto.parts("rec", &key);
    let uploaded: u64 = parts.iter().sum();
    eprintln!("written {written} bytes, in S3 {uploaded} bytes in {} parts", parts.len());
    assert!(written - uploaded < PART, "lost {} bytes", written - uploaded);
    assert!(moto.get("rec", &key).await.is_none());
    assert!(dir.join("bob-v0.webm").exists(), "the local file stays");

    // The next segment's recorder: not before the deadline, then every journaled part.
    let journal = store.journal(&root, &dir).await.unwrap().expect("a journal of the open upload");
    assert_eq!(journal.uploads["bob-v0.webm"].parts.len(), parts.len());
    let t = Instant::now();
    let recovered = store.recover_abandoned(&root, &dir, t + Duration::from_secs(2)).await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(2), "the lost recorder had until the deadline");
    assert_eq!(recovered.files, vec![("bob-v0.webm".to_string(), uploaded)]);
    let got = moto.get("rec", &key).await.expect("the completed object");
    assert_eq!(got.len() as u64, uploaded);
    assert!(got[..] == std::fs::read(dir.join("bob-v0.webm")).unwrap()[..uploaded as usize]);
    let copy = root.join("recovered.webm");
    std::fs::write(&copy, &got).unwrap();
    let p = probe(&copy);
    eprintln!("recovered {uploaded} bytes: {} {:.2} s", p.codec, p.duration_s);
    assert!(p.codec == "vp8" && p.duration_s > 1.0, "{} {:.2} s", p.codec, p.duration_s);
    assert!(store.journal(&root, &dir).await.unwrap().is_none(), "the journal is gone");
    let again = store.recover_abandoned(&root, &dir, Instant::now()).await.unwrap();
    assert!(again.files.is_empty(), "a second recovery finds nothing to do");
    let _ = std::fs::remove_dir_all(&root);
}

/// A small recording, then `finish` against a store that refuses: typed, bounded, files kept.
async fn refused(name: &str, storage: Storage) -> String {
    let (root, dir) = recording_dir(name);
    let uploader = storage.start(&root, &dir);
    std::fs::write(dir.join("carol-a0.webm"), vec![7u8; 4000]).unwrap();
    std::fs::write(dir.join("manifest.json"), b"{}").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let finished = finish::finish(ended(&dir, None), Some(uploader)).await;
    let FromRecorder::Finished { location, error: Some(f), .. } = finished else { panic!("{finished:?}") };
    assert_eq!(location, dir.display().to_string(), "{name}: the files are where they were");
    assert!(t.elapsed() < Duration::from_secs(15), "{name}: failed after {:?}", t.elapsed());
    eprintln!("{name}: failed after {} ms: {}", t.elapsed().as_millis(), f.message);
    assert_eq!(f.code, ErrorCode::Upload);
    assert!(f.message.contains(&format!("/{PREFIX}/")), "{name}: names the object: {}", f.message);
    assert!(dir.join("carol-a0.webm").exists() && dir.join("manifest.json").exists(), "{name}: files kept");
    let _ = std::fs::remove_dir_all(&root);
    f.message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_refusing_fails_the_recording_with_an_upload_error_and_keeps_the_files() {
    let moto = Moto::start();
    moto.create_bucket("rec");
    let m = refused("no-bucket", storage(&moto.endpoint(), "missing")).await;
    assert!(m.contains("s3://missing/") && m.contains("NoSuchBucket"), "{m}");

    let down = format!("http://127.0.0.1:{}", free_port());
    let m = refused("down", storage(&down, "rec")).await;
    assert!(m.contains("s3://rec/"), "{m}");

    // moto checks credentials once its first (unchecked) request made the bucket.
    let strict = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "1")]);
    strict.create_bucket("rec");
    let m = refused("credentials", storage(&strict.endpoint(), "rec")).await;
    assert!(m.contains("s3://rec/") && m.contains("InvalidAccessKeyId"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finish_alone_uploads_what_no_poll_saw() {
    let moto = Moto::start();
    moto.create_bucket("rec");
    let (root, dir) = recording_dir("unpolled");
    let opts = Opts { poll: Duration::from_secs(3600), ..opts() };
    let storage = Storage::new(&moto.endpoint(), "rec", "us-east-1", Some(("test", "test")), "eu-1", opts);
    let uploader = storage.unwrap().start(&root, &dir);
    // Larger than a part (a multipart upload of two parts), exactly a part, and small.
    let big: Vec<u8> = (0..PART + 12345).map(|i| (i * 7 % 251) as u8).collect();
    let exact: Vec<u8> = (0..PART).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.join("dave-v0.webm"), &big).unwrap();
    std::fs::write(dir.join("dave-s0.webm"), &exact).unwrap();
    std::fs::write(dir.join("chat.txt"), b"dave: hi\n").unwrap();
    let t = Instant::now();
    uploader.finish().await.unwrap();
    eprintln!(
        "{} MiB uploaded at the finish in {} ms",
        (big.len() + exact.len()) as u64 / MIB,
        t.elapsed().as_millis()
    );
    assert!(moto.get("rec", &format!("{PREFIX}/dave-v0.webm")).await.unwrap() == big);
    assert!(moto.get("rec", &format!("{PREFIX}/dave-s0.webm")).await.unwrap() == exact);
    assert_eq!(moto.get("rec", &format!("{PREFIX}/chat.txt")).await.unwrap(), b"dave: hi\n");
    let _ = std::fs::remove_dir_all(&root);
}

/// A recording in two segments on two recorders (their own scratch directories, one
/// bucket): segment 1's recorder hands it on and uploads its tracks, composing nothing; the
/// last segment's recorder fetches segment 1 from the bucket, composes the whole recording
/// on one timeline (the gap between the segments included) and puts it at the recording's
/// prefix, leaving nothing fetched behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_segment_composes_the_whole_recording_from_the_bucket() {
    use convene_media::recorder::Manifest;
    use convene_media::recorder::compose::{ComposeConfig, Composer};
    use convene_media::recorder::stitch::Stitcher;
    use convene_proto::recorder::{Continuation, Interruption};

    let moto = Moto::start();
    moto.create_bucket("rec");
    let t0 = 1_796_554_161_042; // START
    let (root1, dir1) = recording_dir("stitch-1");
    let (root2, top2) = recording_dir("stitch-2");
    let dir2 = top2.join("segment-2");
    std::fs::create_dir_all(&dir2).unwrap();
    let frames = noise_frames(&root1);
    let store = storage(&moto.endpoint(), "rec");
    let up1 = store.start(&root1, &dir1);
    // One second of camera in each segment: 0–1 s, then 2–3 s after a bridge migration.
    write_segment(&dir1, Manifest::new("acme/standup", "rec-1", t0), 0, &frames).await;
    let mut m2 = Manifest::new("acme/standup", "rec-2", t0);
    let moved = Continuation { reason: Interruption::BridgeMigration, interrupted_wall_ms: t0 + 1000 };
    m2.continue_from(2, &moved, t0 + 2000);
    let up2 = store.start(&root2, &dir2);
    write_segment(&dir2, m2, 2000, &frames).await;
    up1.finish().await.unwrap();
    assert!(!dir1.exists(), "segment 1's scratch files are gone once uploaded");

    let composer = Composer::new(ComposeConfig { compose_height: 360, ..ComposeConfig::default() });
    let stitcher =
        Stitcher { root: root2.clone(), storage: Some(store.clone()), wait: Duration::from_secs(10) };
    let c = stitcher.compose(&composer, &dir2, 2).await;
    assert_eq!(c.error, None);
    assert_eq!(
        (c.file.as_deref(), c.segments.as_slice(), c.duration_ms),
        (Some("../recording.webm"), &[1, 2][..], 3000)
    );
    up2.finish().await.unwrap();

    let whole =
        moto.get("rec", &format!("{PREFIX}/recording.webm")).await.expect("the whole recording's file");
    let file = root2.join("whole.webm");
    std::fs::write(&file, &whole).unwrap();
    let p = probe(&file);
    eprintln!("whole recording: {} {:.3} s, {} bytes", p.codec, p.duration_s, whole.len());
    assert_eq!(p.codec, "vp8");
    assert!((p.duration_s - 3.0).abs() < 0.5, "{:.3} s", p.duration_s);
    let m2: serde_json::Value =
        serde_json::from_slice(&moto.get("rec", &format!("{PREFIX}/segment-2/manifest.json")).await.unwrap())
            .unwrap();
    assert_eq!(m2["composition"]["segments"], serde_json::json!([1, 2]), "{m2}");
    assert!(!top2.exists(), "nothing fetched or composed stays in the scratch space");
    let _ = std::fs::remove_dir_all(&root1);
    let _ = std::fs::remove_dir_all(&root2);
}

/// One second of bob's camera from `from` ms of recording time into `dir`, and its manifest
/// `m` (stopped cleanly at its end).
async fn write_segment(dir: &Path, mut m: convene_media::recorder::Manifest, from: u64, frames: &[Encoded]) {
    let t0 = m.started_wall_ms;
    let mut w = Writing::new(dir, "bob-v0.webm");
    w.write_until(frames, 2 * MIB).await;
    assert!(w.n < 35, "about a second: {} frames", w.n);
    let n = w.n as u64;
    w.finish();
    let kind = convene_media::control::SourceKind::Camera;
    let e = m.start_track("bob", "bob-v0", kind, Codec::Vp8, "bob-v0.webm", 7, t0 + from);
    let stop = convene_media::recorder::manifest::TrackStop {
        wall_ms: t0 + from + 1000,
        media_ms: 1000,
        frames: n,
        gaps: vec![],
    };
    m.stop_track(&e, stop);
    m.stopped_wall_ms = Some(t0 + from + 1000);
    std::fs::write(dir.join("manifest.json"), m.to_json()).unwrap();
}

/// Segment 1's pod is lost after ~5 s of a large camera track (two full parts up, the rest
/// lost with it); segment 2's recorder completes the lost uploads from the journal once the
/// lost recorder's time is up, fetches them and composes the whole recording over both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_segment_is_recovered_into_the_whole_recording() {
    use convene_media::control::SourceKind;
    use convene_media::recorder::Manifest;
    use convene_media::recorder::compose::{ComposeConfig, Composer};
    use convene_media::recorder::stitch::Stitcher;
    use convene_proto::recorder::{Continuation, Interruption};

    let moto = Moto::start();
    moto.create_bucket("rec");
    let t0 = 1_796_554_161_042; // START
    let (root1, dir1) = recording_dir("lost-1");
    let (root2, top2) = recording_dir("lost-2");
    let dir2 = top2.join("segment-2");
    std::fs::create_dir_all(&dir2).unwrap();
    let frames = noise_frames(&root1);
    let store = storage(&moto.endpoint(), "rec");
    let up1 = store.start(&root1, &dir1);
    let mut m1 = Manifest::new("acme/standup", "rec-1", t0);
    m1.start_track("bob", "bob-v0", SourceKind::Camera, Codec::Vp8, "bob-v0.webm", 7, t0);
    std::fs::write(dir1.join("manifest.json"), m1.to_json()).unwrap();
    let mut w = Writing::new(&dir1, "bob-v0.webm");
    w.write_until(&frames, 11 * MIB).await;
    let key = format!("{PREFIX}/bob-v0.webm");
    until("two parts up", 10, || moto.parts("rec", &key).len() == 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the journal, at the next look
    drop(up1); // SIGKILL: no finish
    drop(w);

    let mut m2 = Manifest::new("acme/standup", "rec-2", t0);
    let lost = Continuation { reason: Interruption::RecorderLost, interrupted_wall_ms: t0 + 5000 };
    m2.continue_from(2, &lost, t0 + 6000);
    let up2 = store.start(&root2, &dir2);
    write_segment(&dir2, m2, 6000, &frames).await;
    let composer = Composer::new(ComposeConfig { compose_height: 360, ..ComposeConfig::default() });
    // The lost recorder's time is up at once (its replacement began long ago, by the clock).
    let stitcher =
        Stitcher { root: root2.clone(), storage: Some(store.clone()), wait: Duration::from_secs(3) };
    let c = stitcher.compose(&composer, &dir2, 2).await;
    assert_eq!(c.error, None);
    assert_eq!((c.segments.as_slice(), c.duration_ms), (&[1, 2][..], 7000));
    up2.finish().await.unwrap();
    assert_eq!(moto.get("rec", &key).await.expect("segment 1's camera, recovered").len() as u64, 10 * MIB);
    let whole =
        moto.get("rec", &format!("{PREFIX}/recording.webm")).await.expect("the whole recording's file");
    let file = root2.join("whole.webm");
    std::fs::write(&file, &whole).unwrap();
    let p = probe(&file);
    eprintln!("whole recording with a recovered segment: {} {:.3} s", p.codec, p.duration_s);
    assert!((p.duration_s - 7.0).abs() < 0.5, "{:.3} s", p.duration_s);
    assert!(!top2.exists(), "nothing fetched or composed stays in the scratch space");
    let _ = std::fs::remove_dir_all(&root1);
    let _ = std::fs::remove_dir_all(&root2);
}
