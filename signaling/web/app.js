// Convene web app: wires the layers together. protocol.js (frames) → signal.js (WebSocket,
// reconnect + rejoin) → store.js (state, reducer) → ui-*.js (components); media.js owns
// devices and the peer connection. Speaks signaling/PROTOCOL.md (v2).
import { t, translate } from './i18n.js';
import { icon } from './icons.js';
import { Signal } from './signal.js';
import { Media } from './media.js';
import { state, reduce, subscribe, changed, on, isMe, myInfo } from './store.js';
import { Stage } from './ui-stage.js';
import { Toolbar } from './ui-toolbar.js';
import { Chat } from './ui-chat.js';
import { People } from './ui-people.js';
import { Settings, fillDeviceSelect } from './ui-settings.js';
import { notice, dismiss, announce } from './ui-notices.js';
import { E2ee, supported as e2eeSupported } from './e2ee.js';
import { ROOT, roomName, wsUrl, joinDefaults } from './boot.js';

const $ = (s) => document.querySelector(s);
const params = new URLSearchParams(location.search);
const pageOpenedAt = performance.now();
// Milestones from navigation start (ms), for the first-frame figures the tests print.
const marks = {};
const mark = (n) => { if (!(n in marks)) marks[n] = Math.round(performance.now()); };
mark('app');

function show(id) {
  for (const s of document.querySelectorAll('.screen')) s.classList.add('hidden');
  $(id).classList.remove('hidden');
}
function message(title, text, { password = false } = {}) {
  $('#message-title').textContent = title;
  $('#message-text').textContent = text;
  $('#password-form').classList.toggle('hidden', !password);
  $('#message-home').href = ROOT.href;
  show('#message');
  if (password) $('#password-input').focus();
}

// ---------------------------------------------------------------- layers
const signal = new Signal(wsUrl, {
  // A socket index.html opened may have joined already (boot.js): then not again.
  onOpen: (early) => { mark('ws_open'); if (early?.joinedAt) marks.join = Math.round(early.joinedAt); else sendJoin(); },
  onMessage: (m) => onMessage(m),
  onLost: () => {
    if (!state.me) return false;
    state.reconnecting = true; changed();
    notice(t('reconnecting'), { key: 'reconnecting', sticky: true, level: 'warn' });
    announce(t('reconnecting'), true);
    return true;
  },
});
const proto = signal.proto;
const e2ee = new E2ee({ onChange: () => changed() });
const media = new Media({
  e2ee, mark, beforeSend: () => { mark('tracks'); return prepareLocal(); },
  proto, relay: params.get('relay') === '1', simulcast: params.get('simulcast') !== '0', maxHeight: 720, notice,
  onRemote: (src, track) => { stage.setTrack(src, track); changed(); },
  onRemoteGone: (src, track) => { stage.unsetTrack(src, track); changed(); },
  onChange: () => { changed(); if ($('#settings-dialog').open) settings.fill(); if (!$('#prejoin').classList.contains('hidden')) fillPrejoinDevices(); },
});
const stage = new Stage({ proto, media, onStats: (tl, anchor) => openStats(tl, anchor), onFrame: () => mark('frame') });
const chat = new Chat({ proto });
const people = new People({ proto, notice });
const settings = new Settings({ media, proto, onName: (n) => proto.profile(n), onLang: () => { translate(); changed(); } });
const toolbar = new Toolbar({
  toggleMic: () => setMic(state.audioMuted),
  toggleCam: () => setCam(state.videoMuted || !media.local.video),
  toggleScreen: () => (state.screenOn ? stopScreen() : startScreen()),
  toggleHand: () => { state.hand = !state.hand; proto.raiseHand(state.hand); changed(); },
  togglePanel, toggleLayout, openSettings: () => settings.open(), leave, endForAll, react,
  closePopover: () => closeStats(), hasCamera: () => !!media.local.video,
});
subscribe(() => { toolbar.render(); stage.render(); chat.render(); people.render(); renderHeader(); });
translate();

window.convene = {
  state, media, stage, e2ee, pageOpenedAt, marks, get pc() { return media.pc; }, startScreen, stopScreen, setMic, setCam,
  stats: () => media.stats(), quality: () => media.quality(), react,
  // Tests: replace the layout-derived receiver constraints (null: back to the layout).
  overrideConstraints(c) { stage.override = c; stage.sendConstraints(); },
  get constraints() { return stage.sent; },
};

// An E2EE passphrase may come in the fragment (#e2ee=…), which browsers never send to a
// server; it is taken out of the address bar so a copied link does not carry it.
const hashParams = new URLSearchParams(location.hash.slice(1));
let keyReady = Promise.resolve();
if (hashParams.get('e2ee')) {
  keyReady = e2eeKey(hashParams.get('e2ee'));
  hashParams.delete('e2ee');
  history.replaceState(null, '', location.pathname + location.search + (hashParams.size ? '#' + hashParams : ''));
}

// ---------------------------------------------------------------- home / prejoin
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

function fillPrejoinDevices() {
  fillDeviceSelect($('#pj-mic'), media.devices, 'audioinput', media.local.audio?.getSettings().deviceId);
  fillDeviceSelect($('#pj-cam'), media.devices, 'videoinput', media.local.video?.getSettings().deviceId);
}
function prejoinLabels() {
  const b = (el, on, onIcon, offIcon, onText, offText) => {
    el.innerHTML = `${icon(on ? onIcon : offIcon)}<span>${on ? onText : offText}</span>`;
    el.setAttribute('aria-pressed', String(on)); el.classList.toggle('off', !on);
  };
  b($('#pj-toggle-mic'), !state.audioMuted, 'mic', 'micOff', t('mic_on'), t('mic_off'));
  b($('#pj-toggle-cam'), !state.videoMuted, 'cam', 'camOff', t('cam_on'), t('cam_off'));
  applyTrackState();
}

async function prejoin() {
  const config = window.conveneEarlyConfig || fetch(new URL('config.json', ROOT)).then((r) => r.json()).catch(() => ({}));
  $('#prejoin-title').textContent = t('join_title', { room: roomName });
  $('#pj-name').value = joinDefaults(params, {}).name;
  media.ready = media.acquire().then((s) => { mark('devices'); return s; });
  if (params.get('autojoin') !== '1') show('#prejoin');
  const cfg = await config;
  state.web = cfg.web || {};
  ({ audioMuted: state.audioMuted, videoMuted: state.videoMuted } = joinDefaults(params, state.web));
  applyTrackState();
  // Joining (signaling round trips, bridge allocation, the peer connection) overlaps with
  // opening the devices: the media layer sends them once they are open.
  if (params.get('autojoin') === '1') connect();
  await media.ready;
  await prepareLocal();
  if (state.me && !media.local.video) publishState();
  $('#preview').srcObject = media.local.stream;
  fillPrejoinDevices();
  $('#pj-mic').onchange = (e) => media.switchDevice('audio', e.target.value, { enabled: !state.audioMuted });
  $('#pj-cam').onchange = async (e) => { await media.switchDevice('video', e.target.value, { enabled: !state.videoMuted }); $('#preview').srcObject = media.local.stream; };
  $('#pj-toggle-mic').onclick = () => { state.audioMuted = !state.audioMuted; prejoinLabels(); };
  $('#pj-toggle-cam').onclick = () => { state.videoMuted = !state.videoMuted; prejoinLabels(); };
  prejoinLabels();
  $('#pj-join').onclick = () => {
    const n = $('#pj-name').value.trim();
    if (n) localStorage.setItem('convene.name', n);
    if ($('#pj-e2ee').value) keyReady = e2eeKey($('#pj-e2ee').value);
    connect();
  };
  // An early answer to an autojoin (meeting, lobby, password, refusal) owns the screen.
  if (!document.querySelector('.screen:not(.hidden)')) show('#prejoin');
  if (!$('#prejoin').classList.contains('hidden')) $('#pj-name').focus();
}

function applyTrackState() {
  if (media.local.audio) media.local.audio.enabled = !state.audioMuted;
  if (media.local.video) media.local.video.enabled = !state.videoMuted;
}
// Local tracks as they may be sent: our mute state, and the shard's cap on what we send
// (known from config.json; before it, prejoin() applies it once it is).
async function prepareLocal() {
  applyTrackState();
  const maxH = Number(state.web.maxResolution) || 720;
  if (maxH < 720) await media.local.video?.applyConstraints({ height: { ideal: maxH }, width: { ideal: Math.round((maxH * 16) / 9) } }).catch(() => {});
}

// ---------------------------------------------------------------- signaling
function connect() {
  if (state.connecting) return;
  state.connecting = true;
  signal.connect();
}
function sendJoin() {
  mark('join');
  proto.join({
    room: roomName, name: $('#pj-name').value.trim() || localStorage.getItem('convene.name'), token: params.get('jwt'),
    password: state.password, audioMuted: state.audioMuted, videoMuted: state.videoMuted,
  });
}
$('#password-form').onsubmit = (e) => {
  e.preventDefault();
  state.password = $('#password-input').value;
  // Signaling closes a socket that has not joined within 10 s: then a new one joins on open.
  if (signal.ws && signal.ws.readyState === WebSocket.OPEN) sendJoin();
  else signal.connect();
};

// Media frames go to the media layer; everything else to the store's reducer.
async function onMessage(m) {
  mark(m.type);
  switch (m.type) {
    case 'media':
      state.bridgeId = m.bridge;
      if (m.ice_servers) state.iceServers = m.ice_servers;
      if (media.pc) { stage.clearRemote(); media.clearRemote(); notice(t('migrating'), { key: 'migrating', level: 'warn', timeout: 4000 }); }
      // Constraints before the offer: the bridge starts with the layers the layout needs
      // instead of switching layers (and waiting for a keyframe) right after.
      stage.mediaReady = true; stage.resetConstraints();
      await keyReady; // an E2EE room's first frames go out encrypted
      await media.start(state.iceServers, m.bridge);
      changed();
      break;
    case 'answer': await media.onAnswer(m.sdp); break;
    case 'offer': await media.onOffer(m); break;
    case 'slots': await media.onSlots(m.slots); break;
    case 'muted_by':
      if (m.kind === 'video') setCam(false); else setMic(false);
      notice(t('muted_by', { by: m.by, what: t(m.kind === 'video' ? 'what_video' : 'what_audio') }), { level: 'warn' });
      announce(t('muted_by', { by: m.by, what: t(m.kind === 'video' ? 'what_video' : 'what_audio') }), true);
      break;
    // After meeting_ended the server also sends kicked (it closes the socket): keep the first.
    case 'kicked': if (!state.left) end(t('removed_title'), t('removed', { by: m.by })); break;
    case 'meeting_ended': state.ended = m.by; end(t('ended_title'), t('ended', { by: m.by })); break;
    case 'lobby_waiting': message(t('waiting_title'), t('waiting_text')); break;
    case 'lobby_denied': end(t('not_admitted'), t('e_lobby_denied')); break;
    // Everyone is told when a recording starts (and by whom) and when it stops.
    case 'room':
      if (m.room.recording && !state.room?.recording && state.me) notice(t('rec_started', { by: m.room.recording_by || '' }), { key: 'rec' });
      if ((m.room.spotlight || null) !== (state.room?.spotlight || null)) spotlightChanged(m.room.spotlight);
      reduce(m);
      roomE2ee();
      break;
    case 'recording_stopped':
      notice(m.by ? t('rec_stopped_by', { by: m.by }) : t('rec_stopped_' + ({ room_ended: 'room', storage_failed: 'storage' }[m.reason] || 'fault')), { key: 'rec', level: m.by ? 'info' : 'warn' });
      break;
    default: reduce(m);
  }
}

on('joined', () => {
  enterMeeting();
  if (state.room?.spotlight) spotlightChanged(state.room.spotlight);
  roomE2ee();
  // The first moderator with a passphrase makes the room end-to-end encrypted.
  keyReady.then(() => {
    if (!e2ee.key || state.room?.e2ee) return;
    if (myInfo()?.moderator) proto.setE2ee(true); else notice(t('e2ee_not_on'), { key: 'e2ee', level: 'warn', timeout: 10000 });
  });
  // Joining a meeting that is being recorded: said once, with who started it.
  if (state.room?.recording) notice(t('rec_in_progress', { by: state.room.recording_by || '' }), { key: 'rec', timeout: 10000 });
});
// A moderator's spotlight takes everyone to the speaker view; clearing it goes back.
function spotlightChanged(id) {
  if (id) {
    if (!state.spotLayout) state.spotLayout = state.layout;
    state.layout = 'stage';
    const p = state.participants.get(id);
    if (p) announce(t('spotlight_notice', { name: isMe(id) ? t('you_cap') : p.name }));
  } else if (state.spotLayout) {
    state.layout = state.spotLayout; state.spotLayout = null;
  }
}

on('rejoined', () => {
  stage.clearRemote(); media.clearRemote();
  // A restarted signaling server has forgotten the room's E2EE flag: never fall back to clear
  // media for that; a moderator with the key sets it again.
  if (e2ee.active && !state.room?.e2ee) { if (e2ee.key && myInfo()?.moderator) proto.setE2ee(true); } else roomE2ee();
  dismiss('reconnecting'); notice(t('reconnected'), { key: 'reconnected', timeout: 3000 });
  publishState();
});
on('announce', ({ key, name }) => announce(t(key, { name })));
on('chat', (m) => { if (!isMe(m.from)) announce(t('chat_from', { name: m.name, text: m.text.slice(0, 140) })); });
on('reaction', (m) => { stage.react(m.from, m.reaction); if (!isMe(m.from)) announce(t('reacted', { name: state.participants.get(m.from)?.name || '', reaction: t('r_' + m.reaction) })); });
on('screen_started', (id) => {
  if (isMe(id)) return;
  if (!state.autoStage) state.layoutBeforeShare = state.layout;
  state.autoStage = id + ':screen'; state.layout = 'stage';
});
on('screen_stopped', (id) => {
  if (state.autoStage === id + ':screen') { state.autoStage = null; if (state.layoutBeforeShare) state.layout = state.layoutBeforeShare; state.layoutBeforeShare = null; }
});
on('error', (m) => {
  const text = t('e_' + m.code) !== 'e_' + m.code ? t('e_' + m.code) : m.message;
  if (!state.me) {
    state.connecting = m.code === 'no_bridge';
    if (m.code === 'password_required' || m.code === 'wrong_password') message(t('password'), text, { password: true });
    else message(t('cannot_join'), text);
  } else notice(text, { level: 'error' });
});

// ---------------------------------------------------------------- end-to-end encryption
async function e2eeKey(passphrase) {
  await e2ee.setPassphrase(passphrase, roomName);
  dismiss('e2ee');
}
// The room's flag switches the transforms between encrypting and passing frames through.
function roomE2ee() {
  const on = !!state.room?.e2ee;
  if (on && !e2eeSupported()) notice(t('e2ee_unsupported'), { key: 'e2ee-unsupported', sticky: true, level: 'error' });
  e2ee.setActive(on);
  if (on && !e2ee.key) notice(t('e2ee_room_locked'), { key: 'e2ee', sticky: true, level: 'warn' });
  // Encrypted mid-call while our connection has no transforms: it must not go on in clear.
  // Rejoining makes a new one with them (a new participant id, as after a network blip).
  if (on && e2eeSupported() && media.pc && !media.transformed && signal.ws) {
    media.pc.close(); signal.ws.close();
  }
}
function openE2ee() {
  $('#e2ee-text').textContent = state.room?.e2ee ? t('e2ee_room_locked') : t('e2ee_need_passphrase');
  $('#e2ee-pass').value = '';
  $('#e2ee-dialog').showModal();
  $('#e2ee-pass').focus();
}
$('#e2ee-form').onsubmit = async (e) => {
  e.preventDefault();
  const v = $('#e2ee-pass').value;
  if (!v) return;
  $('#e2ee-dialog').close();
  await e2eeKey(v);
  if (myInfo()?.moderator && !state.room?.e2ee) proto.setE2ee(true);
  changed();
};
$('#e2ee-cancel').onclick = () => $('#e2ee-dialog').close();
stage.onPassphrase = openE2ee;

function end(title, text) {
  state.left = true; teardown(); message(title, text);
}

// ---------------------------------------------------------------- meeting
function enterMeeting() {
  show('#meeting');
  $('#room-name').textContent = roomName;
  changed();
  setInterval(updateQuality, 2000);
}
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
function renderHeader() {
  const r = state.room || {};
  // The recording flag says who started it (its title; a late joiner also gets a notice).
  const recTitle = r.recording && esc(r.recording_by ? t('rec_by', { by: r.recording_by }) : t('recording'));
  const flags = [r.e2ee && `<span id="e2ee-indicator">${icon('lock')}<span>${t('e2ee_on')}</span></span>`, r.locked && `${icon('lock')}<span>${t('locked')}</span>`, r.lobby && `<span>${t('lobby_on')}</span>`, r.recording && `<span id="rec-indicator" class="rec" title="${recTitle}">${icon('rec')}<span>${t('recording')}</span><span class="sr-only">: ${recTitle}</span></span>`].filter(Boolean);
  const html = flags.join('<span aria-hidden="true"> · </span>');
  if ($('#room-flags').dataset.html !== html) { $('#room-flags').dataset.html = html; $('#room-flags').innerHTML = html; }
  document.body.classList.toggle('reconnecting', state.reconnecting);
}

function setMic(on) { state.audioMuted = !on; applyTrackState(); publishState(); changed(); }
async function setCam(on) {
  state.videoMuted = !on;
  if (on && !media.local.video) await media.switchDevice('video', media.prefs.camId, { enabled: true });
  applyTrackState(); publishState(); changed();
}
function publishState() { proto.mediaState(state.audioMuted, state.videoMuted || !media.local.video, state.screenOn); }

async function startScreen(given) {
  let stream = given;
  if (!stream) {
    try { stream = await navigator.mediaDevices.getDisplayMedia({ video: true }); } catch { notice(t('screen_failed'), { level: 'warn' }); return; }
  }
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  track.onended = () => stopScreen();
  await media.setScreen(track);
  state.screenOn = true;
  const tl = stage.tile(state.me.id, true);
  tl.video.srcObject = new MediaStream([track]);
  publishState(); changed();
}
async function stopScreen() {
  const track = media.local.screen;
  await media.setScreen(null);
  if (track) track.stop();
  state.screenOn = false;
  stage.drop(state.me.id + ':screen');
  publishState(); changed();
}
function react(r) { proto.reaction(r); }
function togglePanel(which) {
  const open = state.panel !== which;
  state.panel = open ? which : null;
  $('#chat-panel').classList.toggle('hidden', state.panel !== 'chat');
  $('#participants-panel').classList.toggle('hidden', state.panel !== 'people');
  $('#side').classList.toggle('hidden', !state.panel);
  if (state.panel === 'chat') { chat.opened(); $('#chat-input').focus(); }
  if (state.panel === 'people') $('#participants-panel .close-panel').focus();
  if (!open) $(which === 'chat' ? '#btn-chat' : '#btn-people').focus();
  changed();
}
for (const b of document.querySelectorAll('.close-panel')) {
  b.innerHTML = icon('close');
  b.onclick = () => togglePanel(state.panel);
}
function toggleLayout() {
  state.layout = state.layout === 'tile' ? 'stage' : 'tile';
  localStorage.setItem('convene.layout', state.layout);
  state.autoStage = null; state.layoutBeforeShare = null;
  if (state.layout === 'tile') state.pinned = null;
  changed();
}
function leave() {
  state.left = true; proto.leave(); teardown();
  message(t('left_title'), '');
  const again = Object.assign(document.createElement('a'), { href: location.href, textContent: t('rejoin') });
  $('#message-text').replaceChildren(again);
}
function endForAll() { proto.endMeeting(); }
function teardown() { closeStats(); media.close(); signal.close(); }

// ---------------------------------------------------------------- connection quality
let poorRuns = 0;
async function updateQuality() {
  const q = await media.quality().catch(() => null);
  if (!q) return;
  state.quality = q;
  stage.setQuality(q);
  const e = $('#quality');
  e.className = 'quality ' + q.me.level;
  const label = `${t('connection')}: ${t('conn_' + q.me.level)}`;
  e.innerHTML = `${icon('signal')}<span class="sr-only">${label}</span>`;
  e.title = label;
  poorRuns = q.me.level === 'poor' && media.pc?.connectionState === 'connected' ? poorRuns + 1 : 0;
  if (poorRuns === 3) notice(t('poor_connection'), { key: 'poor', level: 'warn', timeout: 10000 });
  if (q.me.level !== 'poor') dismiss('poor'); // over: the notice goes (three poor samples say it again)
  if (statsFor) fillStats();
}
$('#quality').onclick = (e) => openStats({ local: true, key: 'me', name: { textContent: state.me?.name } }, e.currentTarget);
let statsFor = null; let statsAnchor = null;
const kbps = (b) => (b >= 1e6 ? `${(b / 1e6).toFixed(1)} Mbit/s` : `${Math.round(b / 1000)} kbit/s`);
function openStats(tl, anchor) {
  if (statsFor && statsFor.key === tl.key) { closeStats(); return; }
  statsFor = tl; statsAnchor = anchor;
  const pop = $('#stats-popover');
  pop.classList.remove('hidden');
  const r = anchor.getBoundingClientRect();
  pop.style.top = `${Math.min(window.innerHeight - 220, r.bottom + 6)}px`;
  pop.style.left = `${Math.max(4, Math.min(window.innerWidth - 260, r.right - 250))}px`;
  fillStats();
  pop.querySelector('button')?.focus();
}
function fillStats() {
  const q = state.quality; const tl = statsFor;
  const me = q?.me; const o = tl.local ? me : q?.remote[tl.key];
  const rows = [];
  if (o) {
    if (tl.local) rows.push([t('bitrate'), `${t('up')} ${kbps(me.up)}, ${t('down')} ${kbps(me.down)}`]);
    else rows.push([t('bitrate'), `${t('down')} ${kbps(o.down)}`]);
    if (o.height) rows.push([t('resolution'), `${o.width}×${o.height}`], [t('fps'), `${Math.round(o.fps || 0)}`]);
    rows.push([t('loss'), `${((o.loss || 0) * 100).toFixed(1)}%`]);
  }
  if (me) rows.push([t('rtt'), me.rtt != null ? `${Math.round(me.rtt * 1000)} ms` : '–'], [t('route'), me.relay ? t('relay') : t('direct')]);
  const pop = $('#stats-popover');
  pop.setAttribute('aria-label', `${t('connection')}: ${tl.name?.textContent || ''}`);
  pop.innerHTML = `<div class="panel-head"><b></b><button type="button" class="icon-btn" aria-label="${t('close')}">${icon('close')}</button></div><dl class="stats"></dl>`;
  pop.querySelector('b').textContent = `${t('connection')}: ${t('conn_' + (o?.level || 'unknown'))}`;
  pop.querySelector('dl').replaceChildren(...rows.flatMap(([k, v]) => [Object.assign(document.createElement('dt'), { textContent: k }), Object.assign(document.createElement('dd'), { textContent: v })]));
  pop.querySelector('button').onclick = () => closeStats();
}
function closeStats() {
  $('#stats-popover').classList.add('hidden');
  const a = statsAnchor; statsFor = null; statsAnchor = null;
  if (a && a.isConnected && document.activeElement?.closest?.('#stats-popover')) a.focus();
}
