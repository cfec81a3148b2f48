//! What follows a recording's capture, in order, before signaling hears `finished`: the
//! steps that turn the complete track files into what the admin keeps.
use convene_proto::recorder::FromRecorder;

use super::metrics::RecorderMetrics;
use super::run::Ended;
use super::stitch::Stitcher;

/// Run the steps after the capture; the `finished` message for signaling.
/// `upload`: the recording's upload to S3, when configured (finished last, after every file is
/// final; the location becomes the bucket's, and its failure the recording's `upload` error).
pub async fn finish(ended: Ended, upload: Option<super::upload::Uploader>) -> FromRecorder {
    finish_counted(ended, upload, None, None).await
}

/// [`finish`], observing a composition's duration in `metrics`; `stitch`: where earlier
/// segments are found, for the last segment of an interrupted recording.
pub async fn finish_counted(
    ended: Ended,
    upload: Option<super::upload::Uploader>,
    metrics: Option<&RecorderMetrics>,
    stitch: Option<&Stitcher>,
) -> FromRecorder {
    let Ended { recording, conference, dir, segment, handoff, files, mut error } = ended;
    // First the one file to watch (it is uploaded with the tracks); its failure is logged and
    // recorded in the manifest, never the recording's. A segment handed on composes nothing:
    // the last segment's recorder composes the whole recording.
    let composer = super::compose::installed().filter(|_| !handoff && (files > 0 || segment > 1));
    if let Some(composer) = composer {
        let c = match stitch.filter(|_| segment > 1) {
            Some(s) => s.compose(composer, &dir, segment).await,
            None => composer.compose_recording(&dir).await,
        };
        if let (Some(m), Some(_)) = (metrics, &c.file) {
            m.compose_seconds.observe(c.wall_ms as f64 / 1000.0);
        }
    }
    let mut location = dir.display().to_string();
    if let Some(upload) = upload {
        match upload.finish().await {
            Ok(l) => location = l,
            // The capture's own failure, if any, comes first.
            Err(f) => error = error.or(Some(f)),
        }
    }
    FromRecorder::Finished { recording, conference, location, files, error }
}
