// What joining needs before the app is loaded: the app's root and room, the join's defaults,
// and with ?autojoin=1 the early join. index.html opened the signaling socket and fetched
// config.json while the modules loaded, and imports this module at once: it sends the join on
// that socket as soon as both are ready — the join app.js would send (same room, defaults,
// builder) — unless signal.js has adopted the socket first (then app.js joins as usual).
import { makeProtocol } from './protocol.js';

export const ROOT = new URL('..', import.meta.url); // the app's root, e.g. https://meet.example.org/
export const roomName = decodeURIComponent(location.pathname.slice(ROOT.pathname.length)).replace(/\/+$/, '');
export const wsUrl = new URL('ws', ROOT);
wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';

// The name (the address's, else the last one used) and the mute state (the address's, else
// the shard's web config) a participant joins with unless they change them on the prejoin screen.
export function joinDefaults(params, web) {
  return {
    name: params.get('name') || localStorage.getItem('convene.name') || '',
    audioMuted: params.has('muted') ? params.get('muted') === '1' : !!web.startAudioMuted,
    videoMuted: params.has('videoMuted') ? params.get('videoMuted') === '1' : !!web.startVideoMuted,
  };
}

const early = window.conveneEarlyWs;
if (early && roomName && early.ws.url === String(wsUrl)) {
  Promise.all([window.conveneEarlyConfig, early.opened]).then(([cfg]) => {
    if (early.adopted || early.ws.readyState !== WebSocket.OPEN) return;
    const params = new URLSearchParams(location.search);
    const d = joinDefaults(params, cfg.web || {});
    makeProtocol((m) => early.ws.send(JSON.stringify(m))).join({
      room: roomName, name: d.name.trim() || localStorage.getItem('convene.name'), token: params.get('jwt'),
      audioMuted: d.audioMuted, videoMuted: d.videoMuted,
    });
    early.joinedAt = performance.now();
  });
}
