// End-to-end encryption, main-thread side: the room key from the passphrase (PBKDF2-SHA-256,
// the room name as salt, AES-GCM-256, not extractable), one worker doing the frame transforms
// (e2ee-worker.js), and what it reports: which receive slots fail to decrypt (a participant
// whose frames we cannot decrypt gets the "enter passphrase" tile).
// RTCRtpScriptTransform (WebRTC Encoded Transform) rather than Chromium's older
// createEncodedStreams: the standard one (also Safari's and Firefox's), running in a worker off
// the main thread, with no `encodedInsertableStreams` flag on the connection. In Chromium 156 a
// transform set after the local description that negotiates its sender or receiver gets no
// frames (tried: set later, even with a renegotiation), so transforms are attached when the
// peer connection is made, whenever a passphrase was given or the room is encrypted (they pass
// frames through while the room is not); media.js restarts the connection otherwise.
export const supported = () => typeof RTCRtpScriptTransform === 'function';

export async function deriveKey(passphrase, room) {
  const enc = new TextEncoder();
  const base = await crypto.subtle.importKey('raw', enc.encode(passphrase), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode('convene-e2ee/' + room), iterations: 100000 },
    base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

export class E2ee {
  constructor({ onChange }) {
    this.onChange = onChange; this.worker = null; this.key = null; this.active = false;
    this.counts = {}; this.recent = new Map(); // "recv:<mid>" -> { ok, fail } in the last second
    this.history = [];
  }
  ensureWorker() {
    if (this.worker || !supported()) return this.worker;
    this.worker = new Worker(new URL('e2ee-worker.js', import.meta.url), { name: 'convene-e2ee' });
    this.worker.onmessage = (e) => { if (e.data.type === 'stats') this.onStats(e.data.counts); };
    this.post();
    return this.worker;
  }
  post() { this.worker?.postMessage({ type: 'config', key: this.key, active: this.active }); }
  async setPassphrase(passphrase, room) {
    this.key = passphrase ? await deriveKey(passphrase, room) : null;
    this.ensureWorker(); this.post(); this.onChange?.();
  }
  setActive(on) { if (this.active === !!on) return; this.active = !!on; if (on) this.ensureWorker(); this.post(); this.onChange?.(); }
  wanted() { return supported() && (this.active || !!this.key); }
  attachSender(sender, kind) {
    if (!this.wanted() || !sender || sender.transform || !this.ensureWorker()) return;
    sender.transform = new RTCRtpScriptTransform(this.worker, { side: 'send', kind });
  }
  attachReceiver(receiver, mid) {
    if (!this.wanted() || !receiver || receiver.transform || !this.ensureWorker()) return;
    receiver.transform = new RTCRtpScriptTransform(this.worker, { side: 'recv', mid });
  }
  // Counters every 500 ms; what changed over the last second says which slots are locked.
  onStats(counts) {
    const now = performance.now();
    this.history.push({ at: now, counts }); this.counts = counts;
    while (this.history.length > 1 && now - this.history[0].at > 1200) this.history.shift();
    const old = this.history[0].counts;
    const recent = new Map();
    for (const [id, c] of Object.entries(counts)) recent.set(id, { ok: c.ok - (old[id]?.ok || 0), fail: c.fail - (old[id]?.fail || 0) });
    const before = JSON.stringify([...this.recent]);
    this.recent = recent;
    if (JSON.stringify([...recent]) !== before) this.onChange?.();
  }
  // A receive slot whose frames we could not decrypt lately and none we could.
  locked(mid) { const r = this.recent.get('recv:' + mid); return !!(this.active && r && r.fail > 0 && r.ok === 0); }
  totals(side) {
    const out = { ok: 0, fail: 0 };
    for (const [id, c] of Object.entries(this.counts)) if (id.startsWith(side + ':')) { out.ok += c.ok; out.fail += c.fail; }
    return out;
  }
}
