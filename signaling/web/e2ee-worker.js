// End-to-end encryption of media frames (RTCRtpScriptTransform worker), SFrame-style: each
// frame's payload is AES-GCM encrypted (WebCrypto) with the room key; a trailer carries the
// 12-byte IV (8 random bytes per sender transform + a 32-bit frame counter), the count of
// leading bytes left in clear, and a marker byte. The codec header stays in clear (as Jitsi
// does) and is authenticated as additional data: the bridge still reads VP8 keyframes and
// their size for simulcast, the packetizers their headers.
const MARK = 0xce;
const TRAILER = 14; // IV (12) + clear length (1) + marker (1)
const CLEAR = { key: 10, delta: 3, audio: 1 }; // VP8 keyframe / VP8 delta frame / Opus TOC
let key = null; // CryptoKey (AES-GCM) or null: no passphrase
let active = false; // the room is end-to-end encrypted
const counts = new Map(); // "recv:<mid>" / "send:<kind>" -> { ok, fail }
const receivers = new Set();

function clearBytes(frame, kind) {
  if (kind === 'audio') return CLEAR.audio;
  return frame.type === 'key' ? CLEAR.key : CLEAR.delta;
}
function count(id) { let c = counts.get(id); if (!c) counts.set(id, (c = { ok: 0, fail: 0 })); return c; }

function sender(kind) {
  const prefix = crypto.getRandomValues(new Uint8Array(8));
  let n = 0;
  const c = count('send:' + kind);
  return async (frame, ctl) => {
    if (!active) { ctl.enqueue(frame); return; }
    if (!key) { c.fail++; return; } // no clear media into an encrypted room
    const data = new Uint8Array(frame.data);
    const h = Math.min(clearBytes(frame, kind), data.length);
    const iv = new Uint8Array(12);
    iv.set(prefix);
    new DataView(iv.buffer).setUint32(8, n);
    n = (n + 1) >>> 0;
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: data.subarray(0, h) }, key, data.subarray(h)));
    const out = new Uint8Array(h + ct.length + TRAILER);
    out.set(data.subarray(0, h));
    out.set(ct, h);
    out.set(iv, h + ct.length);
    out[out.length - 2] = h;
    out[out.length - 1] = MARK;
    frame.data = out.buffer;
    c.ok++;
    ctl.enqueue(frame);
  };
}

function receiver(mid) {
  const c = count('recv:' + mid);
  return async (frame, ctl) => {
    if (!active) { ctl.enqueue(frame); return; }
    const data = new Uint8Array(frame.data);
    const len = data.length;
    // Without the key, or not ours: dropped, never handed to the decoder as garbage.
    if (!key || len < TRAILER + 16 || data[len - 1] !== MARK || data[len - 2] > len - TRAILER - 16) { c.fail++; return; }
    const h = data[len - 2];
    try {
      const pt = new Uint8Array(await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: data.subarray(len - TRAILER, len - 2), additionalData: data.subarray(0, h) }, key, data.subarray(h, len - TRAILER)));
      const out = new Uint8Array(h + pt.length);
      out.set(data.subarray(0, h));
      out.set(pt, h);
      frame.data = out.buffer;
    } catch { c.fail++; return; }
    c.ok++;
    ctl.enqueue(frame);
  };
}

self.onrtctransform = (e) => {
  const tr = e.transformer;
  const { side, kind, mid } = tr.options;
  const fn = side === 'send' ? sender(kind) : receiver(mid);
  if (side !== 'send') receivers.add(tr);
  tr.readable.pipeThrough(new TransformStream({ transform: fn })).pipeTo(tr.writable)
    .catch(() => {}).finally(() => receivers.delete(tr));
};

self.onmessage = (e) => {
  if (e.data.type !== 'config') return;
  const gotKey = e.data.key && e.data.key !== key;
  key = e.data.key || null; active = !!e.data.active;
  // A new key: the decoders dropped everything so far and need a keyframe to start.
  if (gotKey) for (const tr of receivers) tr.sendKeyFrameRequest?.().catch(() => {});
};

setInterval(() => self.postMessage({ type: 'stats', counts: Object.fromEntries(counts) }), 500);
