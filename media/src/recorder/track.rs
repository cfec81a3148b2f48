//! `TrackWriter`: one track, remuxed into WebM as its frames arrive, playable after a crash.
//!
//! Layout: EBML header, a Segment of unknown size (so nothing at the start of the file ever
//! needs rewriting), Info (TimestampScale 1 ms), Tracks, then Clusters. Each Cluster has a
//! known size and goes to the `io::Write` whole when it closes; it closes before a video
//! keyframe (so every Cluster starts decodable) and before any frame 1 s or more past its
//! start. A process killed mid-recording therefore leaves a file that demuxers read up to the
//! last closed Cluster: at most about one second is lost. Nothing at the end of the file is
//! needed to play it. There are no Cues; Info ends with a Void the size of a Duration element,
//! which [`TrackWriter::finish_seekable`] replaces with the Duration on a clean stop.
//!
//! Sans-IO: the time of every frame comes from the frame ([`Frame::rtp_time`]); no clock is
//! read. The `io::Write` is the caller's (a `File`, a `Vec`, an upload buffer).

use std::io::{Seek, SeekFrom, Write};

use webm_iterable::errors::TagWriterError;
use webm_iterable::matroska_spec::{Master, MatroskaSpec, SimpleBlock};
use webm_iterable::{WebmWriter, WriteOptions};

use super::codec::{Codec, OPUS_SEEK_PRE_ROLL_NS};
use super::frame::Frame;
use super::timeline::{DEFAULT_GAP_THRESHOLD_MS, Gap, Timeline};

/// A Cluster is closed (and written out) once a frame is this far past its start.
pub const MAX_CLUSTER_MS: u64 = 1000;

/// The only track in each file.
const TRACK_NUMBER: u64 = 1;

/// A Duration element: 2-byte id, 1-byte size, 8-byte float. The Void reserving its place
/// (1-byte id, 1-byte size, 9 bytes) has the same length, so Info's size never changes.
const DURATION_ELEMENT_LEN: usize = 11;

/// After an error the file's state is unknown: drop the writer and start a new file (the
/// frames already written stay playable).
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("writing WebM: {0:?}")]
    Write(TagWriterError),
    #[error("patching the Duration: {0}")]
    Patch(#[from] std::io::Error),
}

impl From<TagWriterError> for TrackError {
    fn from(e: TagWriterError) -> Self {
        TrackError::Write(e)
    }
}

/// What happened to a frame given to [`TrackWriter::write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// In the file (or in the open Cluster) at this track time.
    At { ms: u64 },
    /// Dropped: video that cannot be decoded before the next keyframe (the track has not
    /// started yet, or packets were lost). [`TrackWriter::needs_keyframe`] is set.
    WaitingForKeyframe,
}

/// Writes one track of one codec to `W` as WebM.
pub struct TrackWriter<W: Write> {
    out: WebmWriter<Counted<W>>,
    /// Offset of the Void in Info that a Duration can replace.
    duration_at: Option<u64>,
    codec: Codec,
    track_uid: u64,
    timeline: Timeline,
    header_written: bool,
    /// Start (track ms) of the Cluster being filled, if one is open.
    cluster_ms: Option<u64>,
    needs_keyframe: bool,
    /// Timestamp of the last block written: the next one is placed strictly after it.
    last_block_ms: Option<u64>,
    frames_written: u64,
    frames_dropped: u64,
    clusters_written: u64,
}

impl<W: Write> TrackWriter<W> {
    /// `track_uid` must be non-zero; the caller keeps it in the manifest to name the track.
    pub fn new(out: W, codec: Codec, track_uid: u64) -> Self {
        TrackWriter {
            out: WebmWriter::new(Counted { inner: out, written: 0 }),
            duration_at: None,
            codec,
            track_uid: track_uid.max(1),
            timeline: Timeline::new(DEFAULT_GAP_THRESHOLD_MS),
            header_written: false,
            cluster_ms: None,
            needs_keyframe: codec.is_video(),
            last_block_ms: None,
            frames_written: 0,
            frames_dropped: 0,
            clusters_written: 0,
        }
    }

    /// Forward jumps longer than this are reported as gaps (default 500 ms). A screen share
    /// that sends a frame a second when nothing moves wants a longer one.
    pub fn with_gap_threshold_ms(mut self, ms: u64) -> Self {
        self.timeline = Timeline::new(ms);
        self
    }

    /// Add one frame. Video is dropped until a keyframe (at the start and after a loss);
    /// the caller should ask the sender for one while [`Self::needs_keyframe`] is true.
    pub fn write(&mut self, frame: &Frame<'_>) -> Result<Written, TrackError> {
        let video = self.codec.is_video();
        if video {
            if !frame.contiguous && !frame.keyframe {
                self.needs_keyframe = true;
            }
            if frame.keyframe {
                self.needs_keyframe = false;
            }
            if self.needs_keyframe {
                self.frames_dropped += 1;
                return Ok(Written::WaitingForKeyframe);
            }
        }
        let keyframe = !video || frame.keyframe;
        if !self.header_written {
            self.write_header(frame)?;
        }
        // Block timestamps strictly increase: a late frame (clamped by the timeline) or the same
        // picture sent twice (a simulcast layer switch) goes 1 ms after the last, since players
        // and muxers take equal timestamps for an error.
        let placed = self.timeline.place(frame.rtp_time, frame.clock_rate);
        let ms = self.last_block_ms.map_or(placed, |last| placed.max(last + 1));
        self.last_block_ms = Some(ms);
        let start_new = match self.cluster_ms {
            None => true,
            Some(start) => (video && keyframe) || ms - start >= MAX_CLUSTER_MS,
        };
        if start_new {
            self.close_cluster()?;
            self.out.write(&MatroskaSpec::Cluster(Master::Start))?;
            self.out.write(&MatroskaSpec::Timestamp(ms))?;
            self.cluster_ms = Some(ms);
        }
        let start = self.cluster_ms.unwrap_or(ms);
        // Within a Cluster the offset is below MAX_CLUSTER_MS, well inside i16.
        let offset = (ms - start) as i16;
        let block = SimpleBlock::new_uncheked(frame.data, TRACK_NUMBER, offset, false, None, false, keyframe);
        self.out.write(&MatroskaSpec::from(block))?;
        self.frames_written += 1;
        Ok(Written::At { ms })
    }

    /// Close the open Cluster so everything written so far reaches `W` (and is flushed).
    /// Useful when a track goes quiet: otherwise its last second waits for the next frame.
    pub fn flush(&mut self) -> Result<(), TrackError> {
        self.close_cluster()
    }

    /// The next frame starts a new timebase `gap_ms` after the last one (the caller knows,
    /// from wall clock, how long a migration or a reconnect took).
    pub fn resync(&mut self, gap_ms: u64) {
        self.timeline.resync(gap_ms);
        if self.codec.is_video() {
            self.needs_keyframe = true;
        }
    }

    /// Write out the last Cluster and hand `W` back. The file is complete without this; it
    /// only saves the last Cluster.
    pub fn finish(mut self) -> Result<W, TrackError> {
        self.close_cluster()?;
        // The Segment has unknown size: ending it writes nothing, it only pops it.
        Ok(self.out.into_inner()?.inner)
    }

    /// [`Self::finish`], then write the Duration into Info (players show a length and seek
    /// bars without scanning). Only for destinations that can seek back, e.g. a `File`.
    pub fn finish_seekable(self) -> Result<W, TrackError>
    where
        W: Seek,
    {
        let duration_ms = self.timeline.last_ms() + self.timeline.last_step_ms();
        let at = self.duration_at;
        let mut out = self.finish()?;
        if let Some(at) = at {
            let element = duration_element(duration_ms as f64)?;
            let end = out.stream_position()?;
            out.seek(SeekFrom::Start(at))?;
            out.write_all(&element)?;
            out.seek(SeekFrom::Start(end))?;
            out.flush()?;
        }
        Ok(out)
    }

    /// The writer's destination, e.g. to look at what a crash would leave behind.
    pub fn get_ref(&self) -> &W {
        &self.out.get_ref().inner
    }

    pub fn gaps(&self) -> &[Gap] {
        self.timeline.gaps()
    }

    pub fn needs_keyframe(&self) -> bool {
        self.needs_keyframe
    }

    /// Track time of the last frame written, in ms from the first.
    pub fn last_ms(&self) -> u64 {
        self.timeline.last_ms()
    }

    pub fn frames_written(&self) -> u64 {
        self.frames_written
    }

    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped
    }

    pub fn clusters_written(&self) -> u64 {
        self.clusters_written
    }

    fn close_cluster(&mut self) -> Result<(), TrackError> {
        if self.cluster_ms.take().is_some() {
            // Ending the only known-size element open makes the writer emit and flush it.
            self.out.write(&MatroskaSpec::Cluster(Master::End))?;
            self.clusters_written += 1;
        }
        Ok(())
    }

    fn write_header(&mut self, first: &Frame<'_>) -> Result<(), TrackError> {
        self.out.write(&MatroskaSpec::Ebml(Master::Full(vec![
            MatroskaSpec::EbmlVersion(1),
            MatroskaSpec::EbmlReadVersion(1),
            MatroskaSpec::EbmlMaxIdLength(4),
            MatroskaSpec::EbmlMaxSizeLength(8),
            MatroskaSpec::DocType("webm".into()),
            MatroskaSpec::DocTypeVersion(4),
            MatroskaSpec::DocTypeReadVersion(2),
        ])))?;
        self.out.write_advanced(
            &MatroskaSpec::Segment(Master::Start),
            WriteOptions::is_unknown_sized_element(),
        )?;
        let app = concat!("convene-recorder ", env!("CARGO_PKG_VERSION"));
        self.out.write(&MatroskaSpec::Info(Master::Full(vec![
            MatroskaSpec::TimestampScale(1_000_000),
            MatroskaSpec::MuxingApp(app.into()),
            MatroskaSpec::WritingApp(app.into()),
            MatroskaSpec::Void(vec![0; DURATION_ELEMENT_LEN - 2]),
        ])))?;
        // Info was written out whole (only the unknown-size Segment is open); the Void is last.
        self.duration_at = Some(self.out.get_ref().written - DURATION_ELEMENT_LEN as u64);
        self.out.write(&MatroskaSpec::Tracks(Master::Full(vec![self.track_entry(first)])))?;
        self.header_written = true;
        Ok(())
    }

    fn track_entry(&self, first: &Frame<'_>) -> MatroskaSpec {
        let mut entry = vec![
            MatroskaSpec::TrackNumber(TRACK_NUMBER),
            MatroskaSpec::TrackUID(self.track_uid),
            MatroskaSpec::TrackType(self.codec.track_type()),
            MatroskaSpec::FlagLacing(0),
            MatroskaSpec::CodecID(self.codec.codec_id().into()),
        ];
        if let Some(private) = self.codec.codec_private() {
            entry.push(MatroskaSpec::CodecPrivate(private));
        }
        match self.codec {
            Codec::Opus => {
                entry.push(MatroskaSpec::CodecDelay(0));
                entry.push(MatroskaSpec::SeekPreRoll(OPUS_SEEK_PRE_ROLL_NS));
                entry.push(MatroskaSpec::Audio(Master::Full(vec![
                    MatroskaSpec::SamplingFrequency(48_000.0),
                    MatroskaSpec::Channels(2),
                ])));
            }
            Codec::Vp8 => {
                // The first frame written is a keyframe; decoders take the real size from
                // the bitstream anyway, the header's is informative.
                let (w, h) = self.codec.keyframe_size(first.data).unwrap_or((640, 480));
                entry.push(MatroskaSpec::Video(Master::Full(vec![
                    MatroskaSpec::PixelWidth(u64::from(w)),
                    MatroskaSpec::PixelHeight(u64::from(h)),
                ])));
            }
        }
        MatroskaSpec::TrackEntry(Master::Full(entry))
    }
}

/// The bytes of a Duration element, from the crate: it only writes elements in place, so
/// write Info holding just the Duration and keep its tail.
fn duration_element(ms: f64) -> Result<Vec<u8>, TrackError> {
    let mut w = WebmWriter::new(Vec::new());
    w.write_advanced(&MatroskaSpec::Segment(Master::Start), WriteOptions::is_unknown_sized_element())?;
    w.write(&MatroskaSpec::Info(Master::Full(vec![MatroskaSpec::Duration(ms)])))?;
    let bytes = w.into_inner()?;
    Ok(bytes[bytes.len() - DURATION_ELEMENT_LEN..].to_vec())
}

/// Counts the bytes that reach the destination, to know where the Void landed.
struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use webm_iterable::WebmIterator;

    use super::*;

    fn opus(rtp_time: u32) -> Frame<'static> {
        Frame { rtp_time, clock_rate: 48_000, keyframe: false, contiguous: true, data: &[0xfc, 0xff, 0xfe] }
    }

    fn vp8(rtp_time: u32, keyframe: bool) -> Frame<'static> {
        const KEY: [u8; 12] = [0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0, 0];
        const INTER: [u8; 4] = [0x31, 0x02, 0x00, 0x00];
        Frame {
            rtp_time,
            clock_rate: 90_000,
            keyframe,
            contiguous: true,
            data: if keyframe { &KEY } else { &INTER },
        }
    }

    /// Cluster timestamps and (cluster, block offset, keyframe) of every SimpleBlock,
    /// read back with the crate's own reader.
    fn layout(bytes: &[u8]) -> (Vec<u64>, Vec<(u64, i16, bool)>) {
        let mut clusters = Vec::new();
        let mut blocks = Vec::new();
        for tag in WebmIterator::new(bytes, &[]) {
            match tag.unwrap() {
                MatroskaSpec::Timestamp(ms) => clusters.push(ms),
                ref t @ MatroskaSpec::SimpleBlock(_) => {
                    let b = SimpleBlock::try_from(t).unwrap();
                    blocks.push((*clusters.last().unwrap(), b.timestamp, b.keyframe));
                }
                _ => {}
            }
        }
        (clusters, blocks)
    }

    #[test]
    fn a_cluster_reaches_the_writer_whole_when_it_closes() {
        let mut w = TrackWriter::new(Vec::new(), Codec::Opus, 1);
        w.write(&opus(0)).unwrap();
        let header = w.get_ref().len();
        assert!(header > 0, "the header is written with the first frame");
        for i in 1..50u32 {
            w.write(&opus(i * 960)).unwrap();
        }
        assert_eq!(w.get_ref().len(), header, "980 ms: the first Cluster is still open");
        assert_eq!(w.write(&opus(50 * 960)).unwrap(), Written::At { ms: 1000 });
        assert!(w.get_ref().len() > header + 50 * 3, "1000 ms: the first Cluster is out");
        assert_eq!(w.clusters_written(), 1);

        let (clusters, blocks) = layout(w.get_ref());
        assert_eq!(clusters, vec![0]);
        assert_eq!(blocks.len(), 50);
        assert_eq!(blocks[49], (0, 980, true), "audio blocks are all keyframes");

        w.flush().unwrap();
        let (clusters, blocks) = layout(w.get_ref());
        assert_eq!(clusters, vec![0, 1000]);
        assert_eq!(blocks[50], (1000, 0, true));
    }

    #[test]
    fn block_timestamps_strictly_increase() {
        let mut w = TrackWriter::new(Vec::new(), Codec::Vp8, 1);
        assert_eq!(w.write(&vp8(0, true)).unwrap(), Written::At { ms: 0 });
        // The same picture again (a layer switch's keyframe), then a late frame.
        assert_eq!(w.write(&vp8(0, true)).unwrap(), Written::At { ms: 1 });
        assert_eq!(w.write(&vp8(9000, false)).unwrap(), Written::At { ms: 100 });
        assert_eq!(w.write(&vp8(6000, false)).unwrap(), Written::At { ms: 101 });
        assert_eq!(w.write(&vp8(12000, false)).unwrap(), Written::At { ms: 133 });
    }

    #[test]
    fn video_waits_for_a_keyframe_and_each_keyframe_starts_a_cluster() {
        let mut w = TrackWriter::new(Vec::new(), Codec::Vp8, 1);
        assert!(w.needs_keyframe());
        assert_eq!(w.write(&vp8(0, false)).unwrap(), Written::WaitingForKeyframe);
        assert!(w.get_ref().is_empty(), "no header before the first keyframe");
        assert_eq!(w.write(&vp8(3000, true)).unwrap(), Written::At { ms: 0 });
        assert!(!w.needs_keyframe());
        w.write(&vp8(6000, false)).unwrap();
        w.write(&vp8(9000, true)).unwrap();
        // A loss: inter frames are useless until the next keyframe.
        let lost = Frame { contiguous: false, ..vp8(12000, false) };
        assert_eq!(w.write(&lost).unwrap(), Written::WaitingForKeyframe);
        assert!(w.needs_keyframe());
        assert_eq!(w.write(&vp8(15000, false)).unwrap(), Written::WaitingForKeyframe);
        assert_eq!(w.write(&vp8(18000, true)).unwrap(), Written::At { ms: 166 });
        assert_eq!(w.frames_dropped(), 3);
        let bytes = w.finish().unwrap();
        let (clusters, blocks) = layout(&bytes);
        assert_eq!(clusters, vec![0, 66, 166]);
        assert_eq!(blocks, vec![(0, 0, true), (0, 33, false), (66, 0, true), (166, 0, true)]);
    }

    #[test]
    fn finish_seekable_puts_the_duration_where_the_void_was() {
        let element = duration_element(1234.0).unwrap();
        assert_eq!(element[..3], [0x44, 0x89, 0x88], "Duration id, size 8");
        let mut w = TrackWriter::new(std::io::Cursor::new(Vec::new()), Codec::Opus, 1);
        for i in 0..100u32 {
            w.write(&opus(i * 960)).unwrap();
        }
        let before = w.get_ref().get_ref().clone();
        let after = w.finish_seekable().unwrap().into_inner();
        assert!(after.len() > before.len(), "the last Cluster was written");
        let tags =
            |b: &[u8]| -> Vec<MatroskaSpec> { WebmIterator::new(b, &[]).map(Result::unwrap).collect() };
        assert!(tags(&before).contains(&MatroskaSpec::Void(vec![0; 9])));
        let after = tags(&after);
        assert!(after.contains(&MatroskaSpec::Duration(2000.0)), "{after:?}");
        assert!(!after.iter().any(|t| matches!(t, MatroskaSpec::Void(_))));
    }

    #[test]
    fn a_slow_screen_share_is_not_a_gap_with_a_longer_threshold() {
        let mut w = TrackWriter::new(Vec::new(), Codec::Vp8, 1).with_gap_threshold_ms(5000);
        w.write(&vp8(0, true)).unwrap();
        w.write(&vp8(90_000, false)).unwrap();
        w.write(&vp8(2 * 90_000, false)).unwrap();
        assert!(w.gaps().is_empty());
        assert_eq!(w.last_ms(), 2000);
        let mut w = TrackWriter::new(Vec::new(), Codec::Vp8, 1);
        w.write(&vp8(0, true)).unwrap();
        w.write(&vp8(90_000, false)).unwrap();
        assert_eq!(w.gaps().len(), 1, "1 s between frames is a gap at the default 500 ms");
    }

    #[test]
    fn header_names_the_codec_and_picture_size() {
        let mut w = TrackWriter::new(Vec::new(), Codec::Vp8, 42);
        w.write(&vp8(0, true)).unwrap();
        let bytes = w.finish().unwrap();
        let tags: Vec<MatroskaSpec> = WebmIterator::new(&bytes[..], &[]).map(Result::unwrap).collect();
        for want in [
            MatroskaSpec::DocType("webm".into()),
            MatroskaSpec::TimestampScale(1_000_000),
            MatroskaSpec::CodecID("V_VP8".into()),
            MatroskaSpec::TrackUID(42),
            MatroskaSpec::PixelWidth(320),
            MatroskaSpec::PixelHeight(240),
        ] {
            assert!(tags.contains(&want), "{want:?} missing from {tags:?}");
        }
    }
}
