// The client protocol (signaling/PROTOCOL.md, v2; types in convene_proto::client): one builder
// per client frame, and the server-frame parser. Builders keep the literal send-an-object-with-type shape
// that proto/tests/schema.rs reads to check the app speaks only what the schema defines.
export const VERSION = 2;
export const REACTIONS = ['like', 'love', 'laugh', 'clap', 'surprise', 'party'];

export function parseServer(text) {
  let m;
  try { m = JSON.parse(text); } catch { return null; }
  return m && typeof m === 'object' && typeof m.type === 'string' ? m : null;
}

// `send(obj)` writes one frame; the returned object has one method per client message.
export function makeProtocol(send) {
  return {
    join: ({ room, name, token, password, audioMuted, videoMuted }) => send({
      type: 'join', v: VERSION, room, name: name || undefined, token: token || undefined,
      password: password || undefined, audio_muted: !!audioMuted, video_muted: !!videoMuted,
    }),
    leave: () => send({ type: 'leave' }),
    offer: (sdp, sources) => send({ type: 'offer', sdp, sources }),
    answer: (id, sdp) => send({ type: 'answer', id, sdp }),
    ice: (candidate) => send({ type: 'ice', candidate }),
    constraints: (constraints) => send({ type: 'constraints', constraints }),
    chat: (text, to) => send({ type: 'chat', text, to: to || undefined }),
    mediaState: (audioMuted, videoMuted, screen) => send({ type: 'media_state', audio_muted: !!audioMuted, video_muted: !!videoMuted, screen: !!screen }),
    profile: (name) => send({ type: 'profile', name }),
    raiseHand: (raised) => send({ type: 'raise_hand', raised: !!raised }),
    reaction: (reaction) => send({ type: 'reaction', reaction }),
    mute: (target, kind) => send({ type: 'mute', target, kind }),
    muteAll: (kind = 'audio') => send({ type: 'mute_all', kind }),
    kick: (target) => send({ type: 'kick', target }),
    grantModerator: (target) => send({ type: 'grant_moderator', target }),
    setLobby: (enabled) => send({ type: 'set_lobby', enabled: !!enabled }),
    lobbyAdmit: (id) => send({ type: 'lobby_admit', id }),
    lobbyDeny: (id) => send({ type: 'lobby_deny', id }),
    setPassword: (password) => send({ type: 'set_password', password: password || null }),
    setRecording: (recording) => send({ type: 'set_recording', recording: !!recording }),
    setE2ee: (enabled) => send({ type: 'set_e2ee', enabled: !!enabled }),
    spotlight: (target) => send({ type: 'spotlight', target: target || null }),
    endMeeting: () => send({ type: 'end_meeting' }),
    iceReport: (bridge, outcome, candidate, turnError) => send({ type: 'ice_report', bridge, outcome, candidate: candidate || undefined, turn_error: turnError || undefined }),
    ping: () => send({ type: 'ping' }),
  };
}
