// The meeting state and the reducer that applies server messages to it. UI components
// subscribe and re-render; side effects the reducer asks for come back as events.
export const state = {
  me: null, room: null, web: {}, participants: new Map(), iceServers: [], bridgeId: null,
  lobby: [], chat: [], unread: 0, dominant: null, hands: [], lastError: null, reactions: [],
  audioMuted: false, videoMuted: false, screenOn: false, hand: false,
  layout: localStorage.getItem('convene.layout') || 'tile', pinned: null, autoStage: null,
  panel: null, password: null, connecting: false, reconnecting: false, left: false, ended: null,
};

const subs = new Set();
export function subscribe(fn) { subs.add(fn); return () => subs.delete(fn); }
// Components re-render once per frame however many messages arrived.
let scheduled = false;
export function changed() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => { scheduled = false; for (const f of subs) f(state); });
  setTimeout(() => { if (scheduled) { scheduled = false; for (const f of subs) f(state); } }, 100); // hidden tabs: no rAF
}
const listeners = new Map();
export function on(ev, fn) { (listeners.get(ev) || listeners.set(ev, []).get(ev)).push(fn); }
export function emit(ev, data) { for (const f of listeners.get(ev) || []) f(data); }

export const isMe = (id) => state.me?.id === id;
export const myInfo = () => state.participants.get(state.me?.id) || state.me;

// Raised hands in the room's queue order (hand_order, from signaling), so a late joiner sees
// the same queue as everyone else.
function trackHand() {
  state.hands = [...state.participants.values()].filter((p) => p.hand_raised)
    .sort((a, b) => (a.hand_order ?? 0) - (b.hand_order ?? 0)).map((p) => p.id);
}

export function reduce(m) {
  switch (m.type) {
    case 'hello': break;
    case 'joined': {
      const rejoin = !!state.me;
      state.me = m.you; state.room = m.room; state.web = m.web || state.web; state.iceServers = m.ice_servers || [];
      state.participants = new Map(m.participants.map((p) => [p.id, p]));
      state.participants.set(m.you.id, m.you);
      trackHand();
      state.dominant = m.room.dominant_speaker || null; state.lobby = [];
      if (state.pinned && !state.participants.has(state.pinned.split(':')[0])) state.pinned = null;
      state.reconnecting = false; state.lastError = null;
      emit(rejoin ? 'rejoined' : 'joined', m);
      break;
    }
    case 'participant_joined':
      state.participants.set(m.participant.id, m.participant); trackHand();
      emit('announce', { key: 'joined_notice', name: m.participant.name });
      break;
    case 'participant_updated': {
      const before = state.participants.get(m.participant.id);
      state.participants.set(m.participant.id, m.participant); trackHand();
      if (isMe(m.participant.id)) { state.me = m.participant; state.hand = m.participant.hand_raised; }
      if (m.participant.screen && !before?.screen) emit('screen_started', m.participant.id);
      if (!m.participant.screen && before?.screen) emit('screen_stopped', m.participant.id);
      break;
    }
    case 'participant_left': {
      const p = state.participants.get(m.id);
      state.participants.delete(m.id); trackHand();
      if (state.pinned?.startsWith(m.id)) state.pinned = null;
      if (state.dominant === m.id) state.dominant = null;
      if (p) emit('announce', { key: 'left_notice', name: p.name });
      emit('participant_left', m.id);
      break;
    }
    case 'room': state.room = m.room; break;
    case 'dominant_speaker': state.dominant = m.id; break;
    case 'connection_state': {
      const p = state.participants.get(m.id);
      if (p) state.participants.set(m.id, { ...p, connection: m.state });
      break;
    }
    case 'chat':
      state.chat.push({ ...m, at: new Date() });
      if (state.panel !== 'chat' && m.from !== state.me?.id) state.unread++;
      emit('chat', m);
      break;
    case 'reaction':
      emit('reaction', m);
      break;
    case 'lobby': state.lobby = m.waiting; break;
    case 'error': state.lastError = m; emit('error', m); break;
    case 'pong': break;
    default: return false;
  }
  changed();
  return true;
}
