// Convene web app: home, prejoin, meeting. Speaks signaling/PROTOCOL.md (v1) over /ws.
const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const ROOT = new URL('..', import.meta.url); // the app's root, e.g. https://meet.example.org/
const pageOpenedAt = performance.now();

function show(id) {
  for (const s of document.querySelectorAll('.screen')) s.classList.add('hidden');
  $(id).classList.remove('hidden');
}
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const c of children) e.append(c);
  return e;
}

const roomName = decodeURIComponent(location.pathname.slice(ROOT.pathname.length)).replace(/\/+$/, '');
const ERRORS = {
  auth_required: 'This server needs a token to join.',
  auth_failed: 'Your token was refused.',
  room_creation_forbidden: 'This meeting has not started yet. Only a host with a token can start it.',
  password_required: 'This meeting is locked with a password.',
  wrong_password: 'Wrong password.',
  lobby_denied: 'A moderator declined your request to join.',
  invalid_room: 'That is not a valid room name.',
  no_bridge: 'No media server is available right now; retrying…',
  media_error: 'Media negotiation failed.',
  not_moderator: 'Only moderators can do that.',
  too_long: 'That message is too long (at most 4096 characters).',
};

// ---------------------------------------------------------------- state
const state = {
  ws: null, me: null, room: null, web: {}, participants: new Map(), iceServers: [],
  pc: null, local: { stream: null, audio: null, video: null, screen: null },
  audioMuted: false, videoMuted: false, screenOn: false, hand: false,
  sources: new Map(), // mid -> {endpoint, kind, name}
  tiles: new Map(), // key -> tile
  queue: Promise.resolve(), dominant: null, password: null, lastConstraints: '',
  migrations: 0, lobby: [], firstFrameMs: null, unread: 0,
};
window.convene = {
  state, pageOpenedAt, get pc() { return state.pc; }, startScreen, stopScreen, stats, setMic, setCam,
  // Tests: replace the layout-derived receiver constraints (null: back to the layout).
  overrideConstraints(c) { state.constraintsOverride = c; sendConstraints(); },
};

// ---------------------------------------------------------------- home
if (!roomName) {
  show('#home');
  $('#home-form').onsubmit = (e) => {
    e.preventDefault();
    const n = $('#home-room').value.trim().toLowerCase().replace(/\s+/g, '-');
    if (n) location.href = new URL(encodeURIComponent(n), ROOT).href;
  };
} else {
  prejoin();
}

// ---------------------------------------------------------------- prejoin
async function getMedia(micId, camId) {
  const max = Number(state.web.maxResolution) || 720;
  const c = {
    audio: micId ? { deviceId: { exact: micId } } : true,
    video: camId ? { deviceId: { exact: camId }, height: { ideal: Math.min(max, 720) } } : { height: { ideal: Math.min(max, 720) } },
  };
  try { return await navigator.mediaDevices.getUserMedia(c); } catch (e) {
    console.warn('getUserMedia failed', e);
    try { return await navigator.mediaDevices.getUserMedia({ audio: true }); } catch { return new MediaStream(); }
  }
}

async function fillDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  for (const [sel, kind] of [['#pj-mic', 'audioinput'], ['#pj-cam', 'videoinput']]) {
    const s = $(sel);
    s.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => el('option', { value: d.deviceId, textContent: d.label || `${kind} ${i + 1}` })));
  }
}

async function prejoin() {
  try { state.web = (await (await fetch(new URL('config.json', ROOT))).json()).web || {}; } catch { state.web = {}; }
  state.audioMuted = params.has('muted') ? params.get('muted') === '1' : !!state.web.startAudioMuted;
  state.videoMuted = params.has('videoMuted') ? params.get('videoMuted') === '1' : !!state.web.startVideoMuted;
  $('#prejoin-title').textContent = `Join ${roomName}`;
  $('#pj-name').value = params.get('name') || localStorage.getItem('convene.name') || '';
  const stream = await getMedia();
  setLocalStream(stream);
  await fillDevices();
  const reacquire = async () => {
    for (const t of state.local.stream.getTracks()) t.stop();
    setLocalStream(await getMedia($('#pj-mic').value, $('#pj-cam').value));
  };
  $('#pj-mic').onchange = reacquire;
  $('#pj-cam').onchange = reacquire;
  const label = () => {
    $('#pj-toggle-mic').textContent = state.audioMuted ? 'Mic off' : 'Mic on';
    $('#pj-toggle-cam').textContent = state.videoMuted ? 'Camera off' : 'Camera on';
    applyTrackState();
  };
  $('#pj-toggle-mic').onclick = () => { state.audioMuted = !state.audioMuted; label(); };
  $('#pj-toggle-cam').onclick = () => { state.videoMuted = !state.videoMuted; label(); };
  label();
  $('#pj-join').onclick = () => {
    const n = $('#pj-name').value.trim();
    if (n) localStorage.setItem('convene.name', n);
    connect();
  };
  show('#prejoin');
  if (params.get('autojoin') === '1') connect();
}

function setLocalStream(stream) {
  state.local.stream = stream;
  state.local.audio = stream.getAudioTracks()[0] || null;
  state.local.video = stream.getVideoTracks()[0] || null;
  $('#preview').srcObject = stream;
  applyTrackState();
}

function applyTrackState() {
  if (state.local.audio) state.local.audio.enabled = !state.audioMuted;
  if (state.local.video) state.local.video.enabled = !state.videoMuted;
}

// ---------------------------------------------------------------- signaling
function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

function connect() {
  const url = new URL('ws', ROOT);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    sendJoin();
    // Signaling closes sockets silent for 60 s (waiting in the lobby too); this also keeps
    // proxies/ingress from idling the socket out.
    const ping = setInterval(() => {
      if (state.ws !== ws || ws.readyState !== WebSocket.OPEN) clearInterval(ping);
      else send({ type: 'ping' });
    }, 20000);
  };
  ws.onmessage = (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.type === 'kicked' || msg.type === 'lobby_denied') state.left = true; // before onclose can reconnect
    state.queue = state.queue.then(() => onMessage(msg)).catch((err) => console.error('handling', msg.type, err));
  };
  ws.onclose = () => {
    if (state.left || state.ws !== ws) return;
    if (state.me) {
      // Signaling restarted or the network blipped: rejoin (a new participant id) after a pause.
      notice('Connection to the server lost; reconnecting…');
      setTimeout(() => { if (!state.left) connect(); }, 1000 + Math.random() * 1000);
    }
  };
}

function sendJoin() {
  send({
    type: 'join', v: 1, room: roomName, name: $('#pj-name').value.trim() || undefined,
    token: params.get('jwt') || undefined, password: state.password || undefined,
    audio_muted: state.audioMuted, video_muted: state.videoMuted,
  });
}

function message(title, text, { password = false } = {}) {
  $('#message-title').textContent = title;
  $('#message-text').textContent = text;
  $('#password-form').classList.toggle('hidden', !password);
  $('#message-home').href = ROOT.href;
  show('#message');
}

$('#password-form').onsubmit = (e) => {
  e.preventDefault();
  state.password = $('#password-input').value;
  // A socket that has not joined is closed after 10 s: reconnect (the new socket joins).
  if (state.ws && state.ws.readyState === WebSocket.OPEN) sendJoin();
  else connect();
};

async function onMessage(m) {
  switch (m.type) {
    case 'hello': break;
    case 'joined': {
      const rejoin = !!state.me;
      if (rejoin) {
        for (const [k, t] of state.tiles) if (!t.local || k !== m.you.id && k !== m.you.id + ':screen') { t.el.remove(); state.tiles.delete(k); }
        for (const a of document.querySelectorAll('audio[id^="audio-"]')) a.remove();
        state.dominant = null; state.lobby = [];
      }
      state.me = m.you; state.room = m.room; state.web = m.web || state.web; state.iceServers = m.ice_servers || [];
      state.participants = new Map(m.participants.map((p) => [p.id, p]));
      state.participants.set(m.you.id, m.you);
      if (rejoin) { const mine = ensureTile(m.you.id, false, true); mine.video.srcObject = state.local.stream; render(); publishState(); } else enterMeeting();
      break;
    }
    case 'media': state.bridgeId = m.bridge; await startMedia(m); break;
    case 'answer': if (state.pc) await state.pc.setRemoteDescription({ type: 'answer', sdp: m.sdp }); break;
    case 'offer': await onBridgeOffer(m); break;
    case 'participant_joined': state.participants.set(m.participant.id, m.participant); render(); break;
    case 'participant_updated':
      state.participants.set(m.participant.id, m.participant);
      if (m.participant.id === state.me?.id) state.me = m.participant;
      render(); break;
    case 'participant_left': state.participants.delete(m.id); removeTilesOf(m.id); render(); break;
    case 'room': state.room = m.room; render(); break;
    case 'chat': addChat(m); break;
    case 'dominant_speaker': state.dominant = m.id; render(); break;
    case 'connection_state': {
      const t = state.tiles.get(m.id); if (t) t.conn.textContent = m.state === 'connected' ? '' : '⚠ ' + m.state; break;
    }
    case 'muted_by':
      if (m.kind === 'video') setCam(false); else setMic(false);
      notice(`${m.by} muted your ${m.kind === 'video' ? 'camera' : 'microphone'}.`);
      break;
    case 'kicked': state.left = true; teardown(); message('Removed', `${m.by} removed you from the meeting.`); break;
    case 'lobby_waiting': message('Waiting to be let in', 'A moderator has been told you are here.'); break;
    case 'lobby_denied': state.left = true; teardown(); message('Not admitted', ERRORS.lobby_denied); break;
    case 'lobby': state.lobby = m.waiting; render(); break;
    case 'error': onError(m); break;
    case 'pong': break;
  }
}

function onError(m) {
  const text = ERRORS[m.code] || m.message;
  if (!state.me) {
    if (m.code === 'password_required' || m.code === 'wrong_password') message('Password', text, { password: true });
    else message('Cannot join', text);
  } else notice(text);
  state.lastError = m;
}

function notice(text) {
  const n = $('#notice');
  n.textContent = text;
  n.classList.remove('hidden');
  clearTimeout(notice.t);
  notice.t = setTimeout(() => n.classList.add('hidden'), 6000);
}

// ---------------------------------------------------------------- media
async function startMedia(m) {
  if (m.ice_servers) state.iceServers = m.ice_servers;
  if (state.pc) {
    state.migrations++;
    state.pc.close();
    for (const t of state.tiles.values()) if (!t.local) { t.video.srcObject = null; }
  }
  state.sources = new Map();
  const pc = new RTCPeerConnection({
    iceServers: state.iceServers,
    iceTransportPolicy: params.get('relay') === '1' ? 'relay' : 'all',
    bundlePolicy: 'max-bundle',
  });
  state.pc = pc;
  const stream = state.local.stream;
  const simulcast = params.get('simulcast') !== '0' && state.local.video;
  pc.addTransceiver(state.local.audio || 'audio', { direction: 'sendonly', streams: [stream] });
  pc.addTransceiver(state.local.video || 'video', {
    direction: 'sendonly', streams: [stream],
    sendEncodings: simulcast ? [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
      { rid: 'f', maxBitrate: 1500000 },
    ] : undefined,
  });
  pc.addTransceiver(state.local.screen || 'video', { direction: 'sendonly' });
  pc.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate) send({ type: 'ice', candidate: e.candidate.candidate }); };
  pc.ontrack = (e) => attachTrack(e.transceiver.mid, e.track);
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const ts = pc.getTransceivers();
  const sources = [{ mid: ts[0].mid, kind: 'audio' }, { mid: ts[1].mid, kind: 'camera' }, { mid: ts[2].mid, kind: 'screen' }];
  send({ type: 'offer', sdp: pc.localDescription.sdp, sources });
  render();
}

async function onBridgeOffer(m) {
  const pc = state.pc;
  if (!pc) return;
  for (const s of m.sources || []) state.sources.set(s.mid, s);
  await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send({ type: 'answer', id: m.id, sdp: pc.localDescription.sdp });
  // Tracks may have been (re)bound by this negotiation.
  for (const t of pc.getTransceivers()) if (t.mid && t.receiver.track && state.sources.has(t.mid) && t.currentDirection !== 'inactive') attachTrack(t.mid, t.receiver.track);
  render();
}

function attachTrack(mid, track) {
  const src = state.sources.get(mid);
  if (!src || !src.endpoint) return;
  if (src.kind === 'audio') {
    let a = document.getElementById('audio-' + src.endpoint);
    if (!a) { a = el('audio', { id: 'audio-' + src.endpoint, autoplay: true }); document.body.append(a); }
    if (a.srcObject?.getTracks()[0] !== track) a.srcObject = new MediaStream([track]);
    return;
  }
  const tile = ensureTile(src.endpoint, src.kind === 'screen');
  if (tile.video.srcObject?.getTracks()[0] !== track) tile.video.srcObject = new MediaStream([track]);
  tile.source = src.name;
}

function removeTilesOf(id) {
  for (const key of [id, id + ':screen']) {
    const t = state.tiles.get(key);
    if (t) { t.el.remove(); state.tiles.delete(key); }
  }
  document.getElementById('audio-' + id)?.remove();
}

function ensureTile(id, screen = false, local = false) {
  const key = screen ? id + ':screen' : id;
  let t = state.tiles.get(key);
  if (t) return t;
  const video = el('video', { autoplay: true, playsInline: true, muted: true });
  const label = el('div', { className: 'label' });
  const avatar = el('div', { className: 'avatar' });
  const conn = el('div', { className: 'conn' });
  const e = el('div', { className: 'tile' + (screen ? ' screen' : '') + (local ? ' local' : '') }, video, avatar, label, conn);
  e.dataset.endpoint = id;
  $('#grid').append(e);
  t = { el: e, video, label, avatar, conn, screen, local, endpoint: id };
  state.tiles.set(key, t);
  return t;
}

async function stats() {
  const out = { video: [], audioBytes: 0, audioPackets: 0, migrations: state.migrations };
  if (!state.pc) return out;
  const r = await state.pc.getStats();
  r.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const src = state.sources.get(s.mid);
    if (s.kind === 'video') out.video.push({ mid: s.mid, endpoint: src?.endpoint, source: src?.kind, framesDecoded: s.framesDecoded || 0, frameHeight: s.frameHeight || 0 });
    else { out.audioBytes += s.bytesReceived || 0; out.audioPackets += s.packetsReceived || 0; }
  });
  return out;
}

// ---------------------------------------------------------------- meeting UI
function enterMeeting() {
  show('#meeting');
  $('#room-name').textContent = roomName;
  const mine = ensureTile(state.me.id, false, true);
  mine.video.srcObject = state.local.stream;
  render();
  setInterval(sendConstraints, 1000);
  setInterval(updateQuality, 2000);
  new ResizeObserver(() => sendConstraints()).observe($('#grid'));
}

function setMic(on) {
  state.audioMuted = !on; applyTrackState(); publishState(); render();
}
function setCam(on) {
  state.videoMuted = !on; applyTrackState(); publishState(); render();
}
function publishState() {
  send({ type: 'media_state', audio_muted: state.audioMuted, video_muted: state.videoMuted, screen: state.screenOn });
}

async function startScreen(given) {
  let stream = given;
  if (!stream) {
    try { stream = await navigator.mediaDevices.getDisplayMedia({ video: true }); } catch (e) { notice('Screen sharing was not started.'); return; }
  }
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  state.local.screen = track;
  track.onended = () => stopScreen();
  const t = state.pc?.getTransceivers()[2];
  if (t) await t.sender.replaceTrack(track);
  const tile = ensureTile(state.me.id, true, true);
  tile.video.srcObject = new MediaStream([track]);
  state.screenOn = true; publishState(); render();
}

async function stopScreen() {
  const track = state.local.screen;
  state.local.screen = null;
  if (track) track.stop();
  const t = state.pc?.getTransceivers()[2];
  if (t) await t.sender.replaceTrack(null);
  removeLocalScreenTile();
  state.screenOn = false; publishState(); render();
}
function removeLocalScreenTile() {
  const key = state.me.id + ':screen';
  const t = state.tiles.get(key);
  if (t) { t.el.remove(); state.tiles.delete(key); }
}

$('#btn-mic').onclick = () => setMic(state.audioMuted);
$('#btn-cam').onclick = () => setCam(state.videoMuted);
$('#btn-screen').onclick = () => (state.screenOn ? stopScreen() : startScreen());
$('#btn-hand').onclick = () => { state.hand = !state.hand; send({ type: 'raise_hand', raised: state.hand }); };
$('#btn-chat').onclick = () => togglePanel('#chat-panel');
$('#btn-people').onclick = () => togglePanel('#participants-panel');
$('#btn-leave').onclick = () => {
  state.left = true; send({ type: 'leave' }); teardown();
  message('You left the meeting', '');
  const again = el('a', { href: location.href, textContent: 'Rejoin' });
  $('#message-text').replaceChildren(again);
};
function togglePanel(id) {
  const p = $(id);
  const open = p.classList.contains('hidden');
  for (const x of document.querySelectorAll('.panel')) x.classList.add('hidden');
  if (open) p.classList.remove('hidden');
  $('#side').classList.toggle('hidden', !open);
  if (id === '#chat-panel' && open) { state.unread = 0; render(); }
}
function teardown() {
  if (state.pc) state.pc.close();
  state.pc = null;
  for (const t of state.local.stream?.getTracks() || []) t.stop();
  if (state.ws) state.ws.close();
}

$('#chat-form').onsubmit = (e) => {
  e.preventDefault();
  const text = $('#chat-input').value;
  if (!text.trim()) return;
  const to = $('#chat-to').value || undefined;
  send({ type: 'chat', text, to });
  $('#chat-input').value = '';
};
function addChat(m) {
  const who = m.from === state.me?.id ? 'You' : m.name;
  const target = m.private ? (m.to === state.me?.id ? ' (privately)' : ` (to ${state.participants.get(m.to)?.name || '?'})`) : '';
  const line = el('div', { className: m.private ? 'private' : '' }, el('b', { textContent: who + target + ': ' }), document.createTextNode(m.text));
  $('#chat-log').append(line);
  $('#chat-log').scrollTop = 1e9;
  if ($('#chat-panel').classList.contains('hidden')) { state.unread++; render(); }
}

$('#mute-all').onclick = () => send({ type: 'mute_all', kind: 'audio' });
$('#lobby-toggle').onchange = (e) => send({ type: 'set_lobby', enabled: e.target.checked });
$('#lock-form').onsubmit = (e) => { e.preventDefault(); send({ type: 'set_password', password: $('#lock-password').value || null }); };

function render() {
  if (!state.me) return;
  $('#btn-mic').textContent = state.audioMuted ? 'Unmute' : 'Mute';
  $('#btn-mic').classList.toggle('off', state.audioMuted);
  $('#btn-cam').textContent = state.videoMuted ? 'Start camera' : 'Stop camera';
  $('#btn-cam').classList.toggle('off', state.videoMuted);
  $('#btn-screen').textContent = state.screenOn ? 'Stop sharing' : 'Share screen';
  $('#btn-hand').textContent = state.hand ? 'Lower hand' : 'Raise hand';
  $('#chat-unread').textContent = state.unread ? `(${state.unread})` : '';
  const r = state.room || {};
  $('#room-flags').textContent = [r.locked ? '🔒 locked' : '', r.lobby ? 'lobby on' : '', r.recording ? '⏺ recording' : ''].filter(Boolean).join(' · ');
  const me = state.participants.get(state.me.id) || state.me;
  const mod = me.moderator;
  $('#mod-room').classList.toggle('hidden', !mod);
  $('#lobby-toggle').checked = !!r.lobby;
  // Tiles: one per participant (camera), one per active screen share.
  for (const p of state.participants.values()) {
    const t = ensureTile(p.id, false, p.id === state.me.id);
    const isMe = p.id === state.me.id;
    const muted = isMe ? state.audioMuted : p.audio_muted;
    const camOff = isMe ? state.videoMuted : p.video_muted;
    t.label.textContent = `${p.hand_raised ? '✋ ' : ''}${p.name}${isMe ? ' (you)' : ''}${muted ? ' 🔇' : ''}${p.moderator ? ' ★' : ''}`;
    if (camOff && p.avatar) {
      if (t.avatar.firstChild?.src !== p.avatar) t.avatar.replaceChildren(el('img', { src: p.avatar, alt: p.name, className: 'avatar-img' }));
    } else t.avatar.textContent = camOff ? (p.name || '?').slice(0, 1).toUpperCase() : '';
    t.video.style.visibility = camOff ? 'hidden' : 'visible';
    t.el.classList.toggle('speaking', state.dominant === p.id);
    t.el.dataset.audioMuted = String(!!muted);
    t.el.dataset.videoMuted = String(!!camOff);
    const st = state.tiles.get(p.id + ':screen');
    if (p.screen && !isMe) { const s = ensureTile(p.id, true); s.label.textContent = `${p.name} (screen)`; }
    else if (st && !isMe) { st.el.remove(); state.tiles.delete(p.id + ':screen'); }
  }
  // Participant list.
  $('#participant-list').replaceChildren(...[...state.participants.values()].map((p) => {
    const li = el('li', {}, el('span', { textContent: `${p.hand_raised ? '✋ ' : ''}${p.name}${p.moderator ? ' ★' : ''}${p.audio_muted ? ' 🔇' : ''}${p.video_muted ? ' 📷✕' : ''}` }));
    li.dataset.id = p.id;
    if (mod && p.id !== state.me.id) {
      li.append(
        el('button', { textContent: 'Mute', onclick: () => send({ type: 'mute', target: p.id, kind: 'audio' }) }),
        el('button', { textContent: 'Stop video', onclick: () => send({ type: 'mute', target: p.id, kind: 'video' }) }),
        el('button', { textContent: 'Kick', onclick: () => send({ type: 'kick', target: p.id }) }),
      );
      if (!p.moderator) li.append(el('button', { textContent: 'Make moderator', onclick: () => send({ type: 'grant_moderator', target: p.id }) }));
    }
    return li;
  }));
  $('#lobby-list').replaceChildren(...(mod ? state.lobby : []).map((w) => {
    const d = el('div', { className: 'waiting' }, el('span', { textContent: `${w.name} is waiting ` }),
      el('button', { textContent: 'Admit', onclick: () => send({ type: 'lobby_admit', id: w.id }) }),
      el('button', { textContent: 'Deny', onclick: () => send({ type: 'lobby_deny', id: w.id }) }));
    d.dataset.id = w.id;
    return d;
  }));
  if (mod && state.lobby.length) notice(`${state.lobby.map((w) => w.name).join(', ')} waiting in the lobby (see Participants).`);
  const sel = $('#chat-to'); const cur = sel.value;
  sel.replaceChildren(el('option', { value: '', textContent: 'Everyone' }),
    ...[...state.participants.values()].filter((p) => p.id !== state.me.id).map((p) => el('option', { value: p.id, textContent: p.name })));
  sel.value = cur;
}

// Receiver constraints: the height each remote tile shows, so simulcast follows the layout.
function sendConstraints() {
  if (!state.pc) return;
  const max_height = {};
  for (const t of state.tiles.values()) {
    if (t.local) continue;
    const h = t.el.clientHeight * (window.devicePixelRatio || 1);
    const step = t.screen ? 1080 : h <= 200 ? 180 : h <= 400 ? 360 : 720;
    max_height[t.endpoint + (t.screen ? '-s0' : '-v0')] = step;
  }
  const c = state.constraintsOverride || { last_n: Number(state.web.lastN ?? -1) || -1, default_max_height: 360, max_height };
  const s = JSON.stringify(c);
  if (s === state.lastConstraints) return;
  state.lastConstraints = s;
  send({ type: 'constraints', constraints: c });
}

async function updateQuality() {
  if (!state.pc) return;
  let rtt = null; let lost = 0; let recv = 0;
  const r = await state.pc.getStats();
  r.forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime != null) rtt = s.currentRoundTripTime;
    if (s.type === 'inbound-rtp') { lost += s.packetsLost || 0; recv += s.packetsReceived || 0; }
  });
  const loss = recv + lost ? lost / (recv + lost) : 0;
  const q = state.pc.iceConnectionState !== 'connected' && state.pc.iceConnectionState !== 'completed' ? 'poor'
    : (loss > 0.05 || (rtt ?? 0) > 0.4) ? 'poor' : (loss > 0.02 || (rtt ?? 0) > 0.2) ? 'fair' : 'good';
  const e = $('#quality');
  e.className = 'quality ' + q;
  e.title = `Connection: ${q}${rtt != null ? `, RTT ${Math.round(rtt * 1000)} ms` : ''}, loss ${(loss * 100).toFixed(1)}%`;
}
