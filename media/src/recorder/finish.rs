//! What follows a recording's capture, in order, before signaling hears `finished`: the
//! steps that turn the complete track files into what the admin keeps.
use convene_proto::recorder::FromRecorder;

use super::run::Ended;

/// Run the steps after the capture; the `finished` message for signaling.
pub async fn finish(ended: Ended) -> FromRecorder {
    let Ended { recording, conference, dir, files, error } = ended;
    // First the one file to watch (it is uploaded with the tracks); its failure is logged and
    // recorded in the manifest, never the recording's.
    if let Some(composer) = super::compose::installed().filter(|_| files > 0) {
        composer.compose_recording(&dir).await;
    }
    FromRecorder::Finished { recording, conference, location: dir.display().to_string(), files, error }
}
