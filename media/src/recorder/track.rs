//! `TrackWriter`: one track, remuxed into WebM as its frames arrive, playable after a crash.
//!
//! Layout: EBML header, a Segment of unknown size (so nothing at the start of the file ever
//! needs rewriting), Info (TimestampScale 1 ms), Tracks, then Clusters. Each Cluster has a
//! known size and goes to the `io::Write` whole when it closes; it closes before a video
//! keyframe (so every Cluster starts decodable) and before any frame 1 s or more past its
//! start. A process killed mid-recording therefore leaves a file that demuxers read up to the
//! last closed Cluster: at most about one second is lost. Nothing at the end of the file is
//! needed to play it; there are no Cues and no Duration (both would need seeking back).
//!
//! Sans-IO: the time of every frame comes from the frame ([`Frame::rtp_time`]); no clock is
//! read. The `io::Write` is the caller's (a `File`, a `Vec`, an upload buffer).

use std::io::Write;

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

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("writing WebM: {0:?}")]
    Write(TagWriterError),
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
    out: WebmWriter<W>,
    codec: Codec,
    track_uid: u64,
    timeline: Timeline,
    header_written: bool,
    /// Start (track ms) of the Cluster being filled, if one is open.
    cluster_ms: Option<u64>,
    needs_keyframe: bool,
    frames_written: u64,
    frames_dropped: u64,
    clusters_written: u64,
}

impl<W: Write> TrackWriter<W> {
    /// `track_uid` must be non-zero; the caller keeps it in the manifest to name the track.
    pub fn new(out: W, codec: Codec, track_uid: u64) -> Self {
        TrackWriter {
            out: WebmWriter::new(out),
            codec,
            track_uid: track_uid.max(1),
            timeline: Timeline::new(DEFAULT_GAP_THRESHOLD_MS),
            header_written: false,
            cluster_ms: None,
            needs_keyframe: codec.is_video(),
            frames_written: 0,
            frames_dropped: 0,
            clusters_written: 0,
        }
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
        let ms = self.timeline.place(frame.rtp_time, frame.clock_rate);
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
        Ok(self.out.into_inner()?)
    }

    /// The writer's destination, e.g. to look at what a crash would leave behind.
    pub fn get_ref(&self) -> &W {
        self.out.get_ref()
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
        ])))?;
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
