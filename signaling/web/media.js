// Media: local devices and the one peer connection to the bridge. Our transceivers are kept by
// role (audio, camera, screen), never looked up by index; every SDP step runs through one
// negotiation queue; devices can be switched live (replaceTrack) and speakers chosen
// (setSinkId); an unplugged device falls back to another one. What we receive comes on the
// bridge's receive slots, negotiated by its offers (one, and more when we want more sources
// than we have slots): audio and video m-lines whose sources the bridge switches and names in
// `slots` messages (protocol v2); each audio slot plays in its own <audio> element, each video
// slot's track goes to the tile of the participant whose camera or screen it carries now.
import { t } from './i18n.js';
import { watchIce } from './ice-report.js';

const PREFS_KEY = 'convene.devices';
const QUALITY = { high: ['q', 'h', 'f'], standard: ['q', 'h'], low: ['q'] };

export function loadPrefs() {
  const d = { micId: '', camId: '', speakerId: '', quality: 'high', noiseSuppression: true, echoCancellation: true };
  try { return { ...d, ...JSON.parse(localStorage.getItem(PREFS_KEY) || '{}') }; } catch { return d; }
}
export function savePrefs(p) { localStorage.setItem(PREFS_KEY, JSON.stringify(p)); }

export class Media {
  constructor({ proto, relay, simulcast, maxHeight, notice, onRemote, onRemoteGone, onChange, e2ee, beforeSend, mark }) {
    Object.assign(this, { proto, relay, simulcast, maxHeight, notice, onRemote, onRemoteGone, onChange, e2ee, beforeSend, mark });
    this.prefs = loadPrefs();
    this.local = { stream: new MediaStream(), audio: null, video: null, screen: null };
    // Receive slots: mid -> { media, source: {endpoint, name, kind} | null }, and their tracks.
    this.pc = null; this.tx = null; this.slots = new Map(); this.slotTracks = new Map(); this.migrations = 0;
    this.framesBase = new Map(); // mid -> { key, base }: decoded frames per slot occupant
    this.queue = Promise.resolve(); this.devices = []; this.audioEls = new Map(); this.ready = Promise.resolve();
    this.localReady = false; // the devices are open and set up (beforeSend): they may be sent
    this.prev = new Map(); // stats sample for bitrate deltas
    navigator.mediaDevices?.addEventListener?.('devicechange', () => this.onDeviceChange());
  }

  // ------------------------------------------------------------ local devices
  audioConstraints(id) {
    const c = { noiseSuppression: this.prefs.noiseSuppression, echoCancellation: this.prefs.echoCancellation, autoGainControl: true };
    if (id) c.deviceId = { exact: id };
    return c;
  }
  videoConstraints(id) {
    const c = { height: { ideal: Math.min(this.maxHeight || 720, 720) }, width: { ideal: 1280 }, aspectRatio: { ideal: 16 / 9 } };
    if (id) c.deviceId = { exact: id };
    return c;
  }
  async getUserMedia(c) {
    try { return await navigator.mediaDevices.getUserMedia(c); } catch (e) {
      if (e.name === 'NotAllowedError' || e.name === 'SecurityError') this.permissionDenied = true;
      throw e;
    }
  }
  // Microphone and camera as the saved preferences say; degrade to what we can get. The peer
  // connection does not wait for them (opening a camera can take longer than joining and
  // connecting): once `beforeSend` has set them up (mute state, resolution cap), they go onto
  // the senders, negotiated or not (`attachLocal`).
  async acquire() {
    const tries = [
      { audio: this.audioConstraints(this.prefs.micId), video: this.videoConstraints(this.prefs.camId) },
      { audio: this.audioConstraints(), video: this.videoConstraints() },
      { audio: this.audioConstraints() }, { video: this.videoConstraints() },
    ];
    let stream = null;
    const early = window.conveneEarlyMedia; // opened by index.html while the modules loaded
    window.conveneEarlyMedia = null;
    if (early) {
      try { stream = await early; } catch (e) { console.warn('early getUserMedia', e.name); if (e.name === 'NotAllowedError' || e.name === 'SecurityError') this.permissionDenied = true; }
    }
    for (const c of stream || this.permissionDenied ? [] : tries) {
      try { stream = await this.getUserMedia(c); break; } catch (e) { console.warn('getUserMedia', e.name); if (this.permissionDenied) break; }
    }
    if (!stream) {
      this.notice(this.permissionDenied ? t('perm_denied') : t('no_devices'), { sticky: true, level: 'error' });
      stream = new MediaStream();
    }
    this.setTrack('audio', stream.getAudioTracks()[0] || null);
    this.setTrack('video', stream.getVideoTracks()[0] || null);
    await this.beforeSend?.();
    this.localReady = true;
    this.attachLocal();
    await this.refreshDevices();
    return this.local.stream;
  }
  // Our microphone and camera onto the peer connection's senders (replaceTrack: no
  // renegotiation), once they are ready to be sent.
  attachLocal() {
    if (!this.localReady || !this.tx) return;
    for (const [kind, role] of [['audio', 'audio'], ['video', 'camera']]) {
      const sender = this.tx[role].sender; const track = this.local[kind];
      if (sender.track !== track) sender.replaceTrack(track).catch((e) => console.warn('replaceTrack', e));
    }
  }
  setTrack(kind, track) {
    const old = this.local[kind];
    if (old && old !== track) { this.local.stream.removeTrack(old); old.stop(); }
    this.local[kind] = track;
    if (track) {
      this.local.stream.addTrack(track);
      track.onended = () => this.onDeviceChange(); // unplugged
      const id = track.getSettings().deviceId;
      if (id) this.prefs[kind === 'audio' ? 'micId' : 'camId'] = id;
    }
  }
  async refreshDevices() {
    this.devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
    this.onChange?.();
    return this.devices;
  }
  label(kind, id) { return this.devices.find((d) => d.kind === kind && d.deviceId === id)?.label || id || '?'; }

  // Switch microphone or camera live: a new track goes onto the same transceiver.
  async switchDevice(kind, deviceId, { enabled = true } = {}) {
    const c = kind === 'audio' ? { audio: this.audioConstraints(deviceId) } : { video: this.videoConstraints(deviceId) };
    const old = this.local[kind];
    if (old) old.stop(); // some cameras cannot be opened twice
    let track;
    try { track = (await this.getUserMedia(c))[kind === 'audio' ? 'getAudioTracks' : 'getVideoTracks']()[0]; } catch (e) {
      this.notice(this.permissionDenied ? t('perm_denied') : `${e.name}: ${e.message}`, { level: 'error' });
      return false;
    }
    track.enabled = enabled;
    this.setTrack(kind, track);
    if (kind === 'audio') this.prefs.micId = deviceId || track.getSettings().deviceId || '';
    else this.prefs.camId = deviceId || track.getSettings().deviceId || '';
    savePrefs(this.prefs);
    await this.tx?.[kind === 'audio' ? 'audio' : 'camera'].sender.replaceTrack(track);
    if (kind === 'video') await this.applyQuality();
    this.onChange?.();
    return true;
  }
  async setSpeaker(id) {
    this.prefs.speakerId = id; savePrefs(this.prefs);
    for (const a of this.audioEls.values()) await this.sink(a);
  }
  async sink(a) {
    if (typeof a.setSinkId === 'function' && this.prefs.speakerId) await a.setSinkId(this.prefs.speakerId).catch((e) => console.warn('setSinkId', e));
  }
  async setAudioProcessing(ns, ec) {
    this.prefs.noiseSuppression = ns; this.prefs.echoCancellation = ec; savePrefs(this.prefs);
    const tr = this.local.audio;
    if (!tr) return;
    // Chromium applies these only to a fresh capture: re-open the same microphone.
    await this.switchDevice('audio', this.prefs.micId, { enabled: tr.enabled });
  }
  async setQuality(q) { this.prefs.quality = q; savePrefs(this.prefs); await this.applyQuality(); }
  // Send quality: which simulcast layers are sent (or how far one layer is scaled down).
  async applyQuality() {
    const s = this.tx?.camera.sender;
    if (!s) return;
    const p = s.getParameters();
    if (!p.encodings?.length) return;
    const keep = QUALITY[this.prefs.quality] || QUALITY.high;
    if (p.encodings.length > 1) for (const e of p.encodings) e.active = keep.includes(e.rid);
    else p.encodings[0].scaleResolutionDownBy = { high: 1, standard: 2, low: 4 }[this.prefs.quality] || 1;
    await s.setParameters(p).catch((e) => console.warn('setParameters', e));
  }
  async onDeviceChange() {
    const before = this.devices;
    await this.refreshDevices();
    for (const [kind, dk] of [['audio', 'audioinput'], ['video', 'videoinput']]) {
      const tr = this.local[kind];
      const id = tr?.getSettings().deviceId;
      const gone = tr && (tr.readyState === 'ended' || (id && !this.devices.some((d) => d.kind === dk && d.deviceId === id)));
      if (!gone) continue;
      const name = before.find((d) => d.deviceId === id)?.label || t(kind === 'audio' ? 'microphone' : 'camera');
      const other = this.devices.find((d) => d.kind === dk && d.deviceId !== id && d.deviceId !== 'default') || this.devices.find((d) => d.kind === dk);
      if (other && await this.switchDevice(kind, other.deviceId, { enabled: tr.enabled })) {
        this.notice(t('device_unplugged', { device: name, other: other.label || other.deviceId }), { level: 'warn' });
      } else {
        this.setTrack(kind, null);
        await this.tx?.[kind === 'audio' ? 'audio' : 'camera'].sender.replaceTrack(null);
        this.notice(t('device_gone', { device: name }), { level: 'warn' });
      }
    }
    const sp = this.prefs.speakerId;
    if (sp && !this.devices.some((d) => d.kind === 'audiooutput' && d.deviceId === sp)) await this.setSpeaker('');
  }

  // ------------------------------------------------------------ peer connection
  enqueue(fn) {
    const run = this.queue.then(fn);
    this.queue = run.catch((e) => console.error('negotiation', e));
    return run;
  }
  // `media` from signaling: (re)create the peer connection and offer our three m-lines, with
  // our tracks if they are ready (else `acquire` puts them on the senders when they are).
  start(iceServers, bridge) {
    return this.enqueue(async () => {
      if (this.pc) { this.migrations++; this.pc.close(); }
      this.transformed = false;
      this.clearRemote();
      const pc = this.newConnection({ iceServers, iceTransportPolicy: this.relay ? 'relay' : 'all', bundlePolicy: 'max-bundle' });
      this.pc = pc;
      watchIce(pc, bridge, this.proto.iceReport);
      const stream = this.local.stream;
      const ready = this.localReady;
      const video = ready && this.local.video;
      this.tx = {
        audio: pc.addTransceiver((ready && this.local.audio) || 'audio', { direction: 'sendonly', streams: [stream] }),
        camera: pc.addTransceiver(video || 'video', {
          direction: 'sendonly', streams: [stream],
          sendEncodings: this.simulcast ? [
            { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
            { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
            { rid: 'f', maxBitrate: 1500000 },
          ] : undefined,
        }),
        screen: pc.addTransceiver(this.local.screen || 'video', { direction: 'sendonly' }),
      };
      this.encrypt();
      pc.onicecandidate = (e) => { if (e.candidate && e.candidate.candidate) this.proto.ice(e.candidate.candidate); };
      pc.ontrack = (e) => this.slotTrack(e.transceiver.mid, e.track);
      pc.oniceconnectionstatechange = () => { if (pc.iceConnectionState === 'connected') this.mark?.('ice_connected'); };
      pc.onconnectionstatechange = () => { if (pc.connectionState === 'connected') this.mark?.('pc_connected'); this.onChange?.(); };
      await pc.setLocalDescription(await pc.createOffer());
      this.mark?.('offer_sent');
      this.proto.offer(pc.localDescription.sdp, [
        { mid: this.tx.audio.mid, kind: 'audio' }, { mid: this.tx.camera.mid, kind: 'camera' }, { mid: this.tx.screen.mid, kind: 'screen' },
      ]);
      this.applyQuality();
    });
  }
  // The connection index.html made early (unused yet: no description set) if there is one,
  // else a new one.
  newConnection(config) {
    const early = window.conveneEarlyPc; window.conveneEarlyPc = null;
    if (early && early.signalingState === 'stable' && !early.localDescription) {
      try { early.setConfiguration(config); return early; } catch (e) { console.warn('early peer connection', e); }
    }
    early?.close();
    return new RTCPeerConnection(config);
  }
  onAnswer(sdp) {
    return this.enqueue(async () => { if (this.pc) await this.pc.setRemoteDescription({ type: 'answer', sdp }); });
  }
  // A bridge offer of our receive slots (the first, or more of them), with what they carry.
  onOffer(m) {
    return this.enqueue(async () => {
      const pc = this.pc;
      if (!pc) return;
      await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
      this.encrypt();
      await pc.setLocalDescription(await pc.createAnswer());
      this.proto.answer(m.id, pc.localDescription.sdp);
      for (const tr of pc.getTransceivers()) {
        if (tr.mid && tr.receiver.track && tr.currentDirection !== 'inactive') this.slotTrack(tr.mid, tr.receiver.track);
      }
      this.applySlots(m.slots || []);
    });
  }
  // End-to-end encryption: the senders (before our offer) and the receive slots (before our
  // answer) get the frame transform; later ones would get no frames (see e2ee.js).
  // `transformed`: this connection can encrypt.
  encrypt() {
    if (!this.e2ee?.wanted() || !this.pc) return;
    for (const [role, tx] of Object.entries(this.tx || {})) this.e2ee.attachSender(tx.sender, role === 'audio' ? 'audio' : 'video');
    for (const tr of this.pc.getTransceivers()) if (tr.mid && tr.receiver && !Object.values(this.tx || {}).includes(tr)) this.e2ee.attachReceiver(tr.receiver, tr.mid);
    this.transformed = !!this.tx?.camera.sender.transform;
  }
  // Tiles (endpoint, endpoint:screen) whose frames we cannot decrypt now (no or another passphrase).
  lockedTiles() {
    const out = new Set();
    for (const [mid, slot] of this.slots) if (slot.source && this.e2ee?.locked(mid)) out.add(slot.source.endpoint + (slot.source.kind === 'screen' ? ':screen' : ''));
    return out;
  }
  // `slots`: some slots now carry another source (or nothing). In the negotiation queue, so it
  // never overtakes the offer that made the slots.
  onSlots(slots) { return this.enqueue(async () => this.applySlots(slots || [])); }
  applySlots(slots) {
    for (const s of slots) {
      const before = this.slots.get(s.mid)?.source || null;
      this.slots.set(s.mid, { media: s.media, source: s.source || null });
      const track = this.slotTracks.get(s.mid);
      if (s.media !== 'video' || !track) continue;
      if (before && (!s.source || before.name !== s.source.name)) this.onRemoteGone?.(before, track);
      if (s.source) this.onRemote?.(s.source, track);
    }
  }
  // A slot's track: audio plays at once (whoever the bridge puts on it); video waits for the
  // slot map to say whose tile it belongs on.
  slotTrack(mid, track) {
    if (!mid || this.slotTracks.get(mid) === track) return;
    this.slotTracks.set(mid, track);
    if (track.kind === 'audio') {
      let a = this.audioEls.get(mid);
      if (!a) {
        a = document.createElement('audio'); a.autoplay = true; a.id = 'audio-slot-' + mid;
        document.getElementById('audio-sink').append(a); this.audioEls.set(mid, a); this.sink(a);
      }
      if (a.srcObject?.getTracks()[0] !== track) a.srcObject = new MediaStream([track]);
      return;
    }
    const src = this.slots.get(mid)?.source;
    if (src) this.onRemote?.(src, track);
  }
  // The participant a video slot shows now (for stats): {endpoint, kind} or null.
  occupant(mid) { return this.slots.get(mid)?.source || null; }
  clearRemote() {
    for (const a of this.audioEls.values()) a.remove();
    this.audioEls.clear(); this.slots = new Map(); this.slotTracks = new Map(); this.framesBase = new Map();
  }
  async setScreen(track) {
    this.local.screen = track;
    await this.tx?.screen.sender.replaceTrack(track);
  }
  close() {
    this.pc?.close(); this.pc = null; this.tx = null;
    for (const tr of this.local.stream.getTracks()) tr.stop();
    this.local.screen?.stop();
  }

  // ------------------------------------------------------------ statistics
  // For the tests: decoded frames per remote source, audio bytes, migrations.
  async stats() {
    const out = { video: [], audioBytes: 0, audioPackets: 0, migrations: this.migrations,
      e2ee: this.e2ee ? { active: this.e2ee.active, recv: this.e2ee.totals('recv'), send: this.e2ee.totals('send') } : null };
    if (!this.pc) return out;
    const r = await this.pc.getStats();
    r.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const src = this.occupant(s.mid);
      if (s.kind === 'video') {
        // A slot's decoded frames count for the participant it carries since it took the slot.
        const key = src ? src.name : '';
        const frames = s.framesDecoded || 0;
        let b = this.framesBase.get(s.mid);
        if (!b || b.key !== key) { b = { key, base: b ? frames : 0 }; this.framesBase.set(s.mid, b); }
        out.video.push({ mid: s.mid, endpoint: src?.endpoint, source: src?.kind, framesDecoded: frames - b.base, frameHeight: s.frameHeight || 0, locked: !!this.e2ee?.locked(s.mid) });
      }
      else { out.audioBytes += s.bytesReceived || 0; out.audioPackets += s.packetsReceived || 0; }
    });
    return out;
  }
  // Connection figures: ours (up/down bitrate, RTT, loss, route) and per remote source. Rates
  // and loss are over the time since the previous call (the app samples every 2 s), not since
  // the call began: a bad patch shows at once, and clears once it is over.
  async quality() {
    const pc = this.pc;
    if (!pc) return null;
    const r = await pc.getStats();
    const now = performance.now();
    const rate = (key, bytes) => {
      const p = this.prev.get(key); this.prev.set(key, { bytes, at: now });
      return p && now > p.at ? Math.max(0, ((bytes - p.bytes) * 8) / ((now - p.at) / 1000)) : 0;
    };
    const since = (key, lost, recv) => { // packets lost and received since the previous call
      const p = this.prev.get(key); this.prev.set(key, { lost, recv });
      return p ? [Math.max(0, lost - p.lost), Math.max(0, recv - p.recv)] : [lost, recv];
    };
    const me = { up: 0, down: 0, rtt: null, loss: 0, relay: false, width: 0, height: 0, fps: 0, state: pc.connectionState };
    const remote = {}; let lost = 0; let recv = 0;
    r.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        if (s.currentRoundTripTime != null) me.rtt = s.currentRoundTripTime;
        me.relay = r.get(s.localCandidateId)?.candidateType === 'relay' || r.get(s.remoteCandidateId)?.candidateType === 'relay';
      }
      if (s.type === 'outbound-rtp') {
        me.up += rate('o' + s.id, s.bytesSent || 0);
        if (s.kind === 'video' && (s.frameHeight || 0) > me.height) { me.height = s.frameHeight; me.width = s.frameWidth; me.fps = s.framesPerSecond || 0; }
      }
      if (s.type === 'inbound-rtp') {
        const b = rate('i' + s.id, s.bytesReceived || 0);
        const [l, n] = since('l' + s.id, s.packetsLost || 0, s.packetsReceived || 0);
        me.down += b; lost += l; recv += n;
        const src = this.occupant(s.mid);
        if (!src?.endpoint) return;
        const key = src.endpoint + (src.kind === 'screen' ? ':screen' : '');
        const o = remote[key] || (remote[key] = { down: 0, width: 0, height: 0, fps: 0, loss: 0, lost: 0, recv: 0 });
        o.down += b; o.lost += l; o.recv += n;
        if (s.kind === 'video') { o.width = s.frameWidth || 0; o.height = s.frameHeight || 0; o.fps = s.framesPerSecond || 0; }
        o.loss = o.recv + o.lost ? o.lost / (o.recv + o.lost) : 0;
      }
    });
    me.loss = recv + lost ? lost / (recv + lost) : 0;
    const connected = pc.connectionState === 'connected';
    me.level = !connected ? 'poor' : (me.loss > 0.05 || (me.rtt ?? 0) > 0.4) ? 'poor' : (me.loss > 0.02 || (me.rtt ?? 0) > 0.2) ? 'fair' : 'good';
    for (const o of Object.values(remote)) o.level = o.loss > 0.05 ? 'poor' : o.loss > 0.02 ? 'fair' : 'good';
    return { me, remote };
  }
}
