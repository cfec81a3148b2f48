//! What follows a recording's capture, in order, before signaling hears `finished`: the
//! steps that turn the complete track files into what the admin keeps.
use convene_proto::recorder::FromRecorder;

use super::run::Ended;

/// Run the steps after the capture; the `finished` message for signaling.
pub async fn finish(ended: Ended) -> FromRecorder {
    let Ended { recording, dir, files, error } = ended;
    FromRecorder::Finished { recording, location: dir.display().to_string(), files, error }
}
