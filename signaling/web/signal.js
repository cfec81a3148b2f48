// The signaling connection: one WebSocket to /ws, JSON frames, keepalive pings, and
// reconnect + rejoin when the server restarts or the network blips (a rejoin is a new
// participant id; the media layer renegotiates on the `media` that follows `joined`).
// In a group of shards the entry signaling may answer a join with `redirect`: the socket then
// moves to the given URL (it carries the hop count) and the join is sent there, no reload. A
// lost connection always reconnects through the entry URL, never to the shard it was
// redirected to (that shard may be the one that died; the entry sends us to its successor).
import { makeProtocol, parseServer } from './protocol.js';

export class Signal {
  constructor(url, { onMessage, onOpen, onLost }) {
    this.entry = url; this.url = url; this.onMessage = onMessage; this.onOpen = onOpen; this.onLost = onLost;
    this.ws = null; this.closed = false; this.attempt = 0;
    this.proto = makeProtocol((m) => this.write(m));
    this.queue = Promise.resolve(); // server frames are handled one at a time, in order
  }
  write(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(msg)); return true; }
    return false;
  }
  connect() {
    const early = window.conveneEarlyWs; // opened by index.html while the modules loaded
    window.conveneEarlyWs = null;
    // A socket boot.js joined on is ours even if it has closed since (a redirect closes it): what
    // arrived on it is replayed.
    const adopt = early && early.ws.url === String(this.url) && (early.ws.readyState <= WebSocket.OPEN || !!early.joinedAt);
    if (early) early.adopted = true; // boot.js no longer joins on it
    if (early && !adopt) early.ws.close();
    const ws = adopt ? early.ws : new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => { this.attempt = 0; this.onOpen(); };
    ws.onmessage = (e) => {
      const msg = parseServer(e.data);
      if (!msg) return;
      if (msg.type === 'redirect') { this.redirect(ws, msg); return; }
      if (msg.type === 'kicked' || msg.type === 'lobby_denied' || msg.type === 'meeting_ended') this.closed = true; // before onclose can reconnect
      this.queue = this.queue.then(() => this.onMessage(msg)).catch((err) => console.error('handling', msg.type, err));
    };
    ws.onclose = () => {
      if (this.closed || this.ws !== ws) return;
      // Back through the entry: the shard we were sent to may be gone (a redirect target that
      // never let us in is tried again that way too, even before we joined).
      const redirected = String(this.url) !== String(this.entry);
      this.url = this.entry;
      if (this.onLost() === false && !redirected) return;
      const delay = Math.min(1000 * 2 ** this.attempt++, 8000) * (0.5 + Math.random() / 2);
      setTimeout(() => { if (!this.closed) this.connect(); }, Math.max(delay, 500));
    };
    if (adopt) {
      for (const e of early.buf) ws.onmessage(e);
      // Open already (joined on it too if boot.js did: early.joinedAt), or closed after the join.
      if (ws.readyState === WebSocket.OPEN || early.joinedAt) { this.attempt = 0; this.onOpen(early); }
      if (ws.readyState === WebSocket.CLOSED) ws.onclose();
    }
    clearInterval(this.pinger);
    this.pinger = setInterval(() => this.proto.ping(), 20000); // proxies/ingress must not idle us out
  }
  // The room lives on another shard: open its URL (onopen sends the join again there).
  redirect(ws, { shard, url }) {
    let next;
    try { next = new URL(url, this.entry); } catch { return; }
    if (next.protocol !== 'ws:' && next.protocol !== 'wss:') return;
    console.info('signaling: room is on shard', shard, '- moving to', next.href);
    this.url = next;
    this.ws = null; // this socket's close is expected, not a lost connection
    ws.close();
    this.connect();
  }
  close() { this.closed = true; clearInterval(this.pinger); if (this.ws) this.ws.close(); }
}
