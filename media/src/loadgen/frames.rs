//! The few client-protocol frames (`signaling/PROTOCOL.md`) a simulated participant uses.
//! Defined here rather than imported: signaling depends on this crate, not the other way.
//! Server frames keep only the fields we read; other frame types parse as `Other`.
use serde::{Deserialize, Serialize};

use crate::control::{ReceiverConstraints, SourceInfo};

/// Client → signaling.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Join {
        v: u32,
        room: String,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        audio_muted: bool,
        video_muted: bool,
    },
    Leave,
    Offer {
        sdp: String,
        sources: Vec<SourceInfo>,
    },
    Answer {
        id: u64,
        sdp: String,
    },
    Constraints {
        constraints: ReceiverConstraints,
    },
}

impl ClientFrame {
    pub fn to_json(&self) -> String {
        // Plain strings and numbers: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Participant {
    pub id: String,
}

/// Signaling → client (only what a load participant acts on).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Joined {
        you: Participant,
        #[serde(default)]
        participants: Vec<Participant>,
    },
    Media {
        bridge: String,
        #[serde(default)]
        migration: bool,
    },
    Answer {
        sdp: String,
    },
    Offer {
        id: u64,
        sdp: String,
        #[serde(default)]
        sources: Vec<SourceInfo>,
    },
    ParticipantJoined {
        participant: Participant,
    },
    ParticipantLeft {
        id: String,
    },
    Error {
        code: String,
        #[serde(default)]
        message: String,
    },
    Kicked {
        #[serde(default)]
        by: String,
    },
    LobbyDenied,
    /// Presence updates, chat, dominant speaker, hello, pong …: nothing to do.
    #[serde(other)]
    Other,
}

impl ServerFrame {
    pub fn parse(text: &str) -> Result<ServerFrame, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::SourceKind;

    #[test]
    fn join_and_offer_encoding() {
        let j = ClientFrame::Join {
            v: 1,
            room: "load-0".into(),
            name: "p0".into(),
            token: None,
            audio_muted: false,
            video_muted: false,
        };
        assert_eq!(
            j.to_json(),
            r#"{"type":"join","v":1,"room":"load-0","name":"p0","audio_muted":false,"video_muted":false}"#
        );
        let o = ClientFrame::Offer {
            sdp: "v=0".into(),
            sources: vec![SourceInfo {
                mid: "1".into(),
                kind: SourceKind::Camera,
                endpoint: None,
                name: None,
            }],
        };
        assert!(o.to_json().contains(r#""sources":[{"mid":"1","kind":"camera""#), "{}", o.to_json());
        assert_eq!(ClientFrame::Leave.to_json(), r#"{"type":"leave"}"#);
    }

    #[test]
    fn server_frames_parse_and_unknown_ones_are_other() {
        let m = ServerFrame::parse(r#"{"type":"media","bridge":"b1","migration":true,"ice_servers":[]}"#);
        assert_eq!(m.unwrap(), ServerFrame::Media { bridge: "b1".into(), migration: true });
        let j = ServerFrame::parse(
            r#"{"type":"joined","v":1,"you":{"id":"a","name":"x","moderator":true},"room":{},"participants":[{"id":"b"}],"ice_servers":[],"web":{}}"#,
        )
        .unwrap();
        assert_eq!(
            j,
            ServerFrame::Joined {
                you: Participant { id: "a".into() },
                participants: vec![Participant { id: "b".into() }]
            }
        );
        let o = ServerFrame::parse(
            r#"{"type":"offer","id":7,"sdp":"v=0","sources":[{"mid":"3","kind":"audio","endpoint":"b","name":"b-a0"}]}"#,
        )
        .unwrap();
        let ServerFrame::Offer { id, sources, .. } = o else { panic!("variant") };
        assert_eq!((id, sources[0].name.as_deref()), (7, Some("b-a0")));
        assert_eq!(
            ServerFrame::parse(r#"{"type":"dominant_speaker","id":"b"}"#).unwrap(),
            ServerFrame::Other
        );
        assert_eq!(ServerFrame::parse(r#"{"type":"hello","v":1}"#).unwrap(), ServerFrame::Other);
        for bad in
            ["{", "[]", r#"{"type":"media"}"#, r#"{"type":"offer","id":"x","sdp":""}"#, r#"{"no":"type"}"#]
        {
            assert!(ServerFrame::parse(bad).is_err(), "{bad}");
        }
    }
}
