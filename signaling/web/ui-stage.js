// Tiles and layouts. Tile view: 16:9 tiles sized to fill the window, 1–49 in a grid that
// reflows. Speaker view: one tile on the stage (pinned > screen share > dominant speaker)
// and the rest in a filmstrip. After every layout change the receiver constraints are
// derived from what is on screen (tile heights → max height, visible tiles → last-N/pins)
// and sent when they differ from the last ones. Remote video comes on the bridge's receive
// slots: a tile shows video while a slot carries its source, its avatar otherwise (outside
// last-N, or before the first keyframe).
import { state, isMe, changed } from './store.js';
import { t } from './i18n.js';
import { icon } from './icons.js';

const MAX_GRID = 49;
const $ = (s) => document.querySelector(s);
const COLORS = ['#5b6ee1', '#d9534f', '#3f9f6f', '#c27c0e', '#8e5bd6', '#2a8fb5', '#c2497e', '#6d7f2a'];
const hash = (s) => [...s].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
export const initials = (name) => (name || '?').trim().split(/\s+/).slice(0, 2).map((w) => w[0]).join('').toUpperCase() || '?';
const snapCam = (h) => (h <= 200 ? 180 : h <= 400 ? 360 : 720);
const snapScreen = (h) => (h <= 200 ? 360 : h <= 500 ? 720 : 1080); // text on screens needs more pixels

export class Stage {
  constructor({ proto, media, onStats, onFrame }) {
    this.proto = proto; this.media = media; this.onStats = onStats; this.onFrame = onFrame;
    this.tiles = new Map(); this.tracks = new Map(); this.quality = null; this.lastConstraints = ''; this.override = null;
    this.grid = $('#grid'); this.stage = $('#stage'); this.film = $('#filmstrip');
    const relayout = () => this.layout();
    new ResizeObserver(relayout).observe($('#stage-area'));
    this.film.addEventListener('scroll', () => this.sendConstraints(), { passive: true });
    window.addEventListener('resize', relayout);
  }

  tile(endpoint, screen = false) {
    const key = screen ? endpoint + ':screen' : endpoint;
    let tl = this.tiles.get(key);
    if (tl) return tl;
    const el = document.createElement('div');
    el.className = 'tile' + (screen ? ' screen' : '') + (isMe(endpoint) ? ' local' : '');
    el.dataset.endpoint = endpoint; el.dataset.key = key;
    el.setAttribute('role', 'group');
    el.innerHTML = `<video autoplay playsinline muted></video><div class="avatar" aria-hidden="true"></div><div class="e2ee-lock hidden">${icon('lock')}<p></p><button type="button" class="small"></button></div>
      <div class="label"><span class="hand hidden">${icon('hand')}</span><span class="name"></span><span class="mic-off hidden">${icon('micOff')}</span></div>
      <div class="tile-actions"><button type="button" class="conn unknown">${icon('signal')}</button><button type="button" class="pin">${icon('pin')}</button></div>
      <div class="reaction-layer" aria-hidden="true"></div>`;
    tl = { key, endpoint, screen, local: isMe(endpoint), el, video: el.querySelector('video'), avatar: el.querySelector('.avatar'),
      name: el.querySelector('.name'), hand: el.querySelector('.hand'), micOff: el.querySelector('.mic-off'),
      conn: el.querySelector('.conn'), pin: el.querySelector('.pin'), layer: el.querySelector('.reaction-layer'),
      lock: el.querySelector('.e2ee-lock') };
    tl.lock.querySelector('button').onclick = () => this.onPassphrase?.();
    // A track can arrive before the presence that makes its tile (or outlive a redraw).
    const known = this.tracks.get(key);
    if (known && known.readyState === 'live') this.show(tl, known);
    tl.pin.onclick = () => { state.pinned = state.pinned === key ? null : key; if (state.pinned) state.layout = 'stage'; changed(); };
    tl.conn.onclick = (e) => this.onStats(tl, e.currentTarget);
    this.tiles.set(key, tl);
    return tl;
  }
  // A slot now carries `src`: its tile shows the slot's track.
  setTrack(src, track) {
    this.tracks.set(src.endpoint + (src.kind === 'screen' ? ':screen' : ''), track);
    const tl = this.tile(src.endpoint, src.kind === 'screen');
    if (tl.video.srcObject?.getTracks()[0] !== track) this.show(tl, track);
    tl.source = src.name;
  }
  // A remote track onto a tile; its first picture on screen is reported (`onFrame`: the
  // page-open → first remote frame figure).
  show(tl, track) {
    tl.video.srcObject = new MediaStream([track]);
    if (!tl.local && this.onFrame && tl.video.requestVideoFrameCallback) tl.video.requestVideoFrameCallback(() => this.onFrame());
  }
  // The slot `track` no longer carries `src` (another participant took it, or nobody).
  unsetTrack(src, track) {
    const key = src.endpoint + (src.kind === 'screen' ? ':screen' : '');
    if (this.tracks.get(key) !== track) return;
    this.tracks.delete(key);
    const tl = this.tiles.get(key);
    if (tl && tl.video.srcObject?.getTracks()[0] === track) tl.video.srcObject = null;
  }
  hasVideo(key) { return this.tracks.get(key)?.readyState === 'live'; }
  drop(key) { const tl = this.tiles.get(key); if (tl) { tl.el.remove(); this.tiles.delete(key); } }
  clearRemote() { this.tracks.clear(); for (const [k, tl] of this.tiles) if (!tl.local) this.drop(k); }

  // One tile per participant, one per screen share; labels, avatars, speaker, hands.
  render() {
    if (!state.me) return;
    const want = new Set();
    const locked = this.media.lockedTiles(); // E2EE: their frames do not decrypt here
    for (const p of state.participants.values()) {
      const me = isMe(p.id);
      const tl = this.tile(p.id);
      want.add(tl.key);
      if (me && tl.video.srcObject !== this.media.local.stream) tl.video.srcObject = this.media.local.stream;
      const muted = me ? state.audioMuted : p.audio_muted;
      const camOff = me ? (state.videoMuted || !this.media.local.video) : p.video_muted;
      const noVideo = !me && !camOff && !this.hasVideo(tl.key); // not on a slot (last-N) yet
      const name = `${p.name}${me ? ` (${t('you')})` : ''}`;
      tl.name.textContent = name;
      const spot = state.room?.spotlight === p.id;
      tl.el.setAttribute('aria-label', [name, spot && t('spotlighted'), muted && t('muted'), p.hand_raised && t('hand_raised'), state.dominant === p.id && t('speaking')].filter(Boolean).join(', '));
      tl.el.classList.toggle('spotlight', spot);
      tl.micOff.classList.toggle('hidden', !muted);
      tl.hand.classList.toggle('hidden', !p.hand_raised);
      tl.el.classList.toggle('video-off', !!camOff);
      tl.el.classList.toggle('no-video', noVideo);
      if (camOff || noVideo) {
        if (p.avatar) { if (tl.avatar.firstChild?.src !== p.avatar) tl.avatar.innerHTML = `<img class="avatar-img" alt="" src="${encodeURI(p.avatar)}">`; } else if (tl.avatar.dataset.name !== p.name) {
          tl.avatar.dataset.name = p.name;
          tl.avatar.replaceChildren(Object.assign(document.createElement('span'), { className: 'initials', textContent: initials(p.name) }));
          tl.avatar.firstChild.style.background = COLORS[hash(p.id) % COLORS.length];
        }
      }
      this.showLock(tl, !me && locked.has(tl.key));
      tl.el.classList.toggle('speaking', state.dominant === p.id && state.participants.size > 1);
      tl.el.classList.toggle('hand-up', !!p.hand_raised);
      tl.el.dataset.audioMuted = String(!!muted);
      tl.el.dataset.videoMuted = String(!!camOff);
      tl.conn.setAttribute('aria-label', `${t('connection')}: ${name}`);
      tl.pin.setAttribute('aria-label', `${state.pinned === tl.key ? t('unpin') : t('pin')}: ${name}`);
      tl.pin.setAttribute('aria-pressed', String(state.pinned === tl.key));
      if (p.screen && (!me || state.screenOn)) {
        const s = this.tile(p.id, true);
        want.add(s.key);
        this.showLock(s, !me && locked.has(s.key));
        s.name.textContent = t('screen_of', { name: p.name });
        s.el.setAttribute('aria-label', t('screen_of', { name: p.name }));
        s.conn.setAttribute('aria-label', `${t('connection')}: ${t('screen_of', { name: p.name })}`);
        s.pin.setAttribute('aria-label', `${state.pinned === s.key ? t('unpin') : t('pin')}: ${t('screen_of', { name: p.name })}`);
      }
    }
    for (const k of [...this.tiles.keys()]) if (!want.has(k)) this.drop(k);
    if (state.pinned && !this.tiles.has(state.pinned)) state.pinned = null;
    this.layout();
  }

  // E2EE: "enter the passphrase" over a tile whose frames do not decrypt here.
  showLock(tl, lock) {
    if (tl.lock.classList.contains('hidden') === !lock) return;
    tl.lock.querySelector('p').textContent = t('e2ee_locked');
    tl.lock.querySelector('button').textContent = t('e2ee_enter');
    tl.lock.classList.toggle('hidden', !lock);
    tl.el.classList.toggle('e2ee-locked', lock);
  }

  stageKey() {
    if (state.pinned && this.tiles.has(state.pinned)) return state.pinned;
    const spot = state.room?.spotlight; // a moderator's choice for everyone, under our own pin
    if (spot && !isMe(spot) && this.tiles.has(spot)) return spot;
    const screens = [...this.tiles.values()].filter((x) => x.screen && !x.local);
    const auto = screens.find((x) => x.key === state.autoStage) || screens[screens.length - 1];
    if (auto) return auto.key;
    if (state.dominant && !isMe(state.dominant) && this.tiles.has(state.dominant)) return state.dominant;
    if (this.lastStage && this.tiles.has(this.lastStage) && !this.tiles.get(this.lastStage).local) return this.lastStage;
    const remote = [...this.tiles.values()].find((x) => !x.local);
    return (remote || this.tiles.values().next().value)?.key;
  }

  order() {
    // Screens first, then participants in join order (me first), hands up early.
    const all = [...this.tiles.values()];
    const rank = (x) => (x.screen ? 0 : x.local ? 1 : 2);
    const joinIdx = new Map([...state.participants.keys()].map((k, i) => [k, i]));
    return all.sort((a, b) => rank(a) - rank(b) || (joinIdx.get(a.endpoint) ?? 0) - (joinIdx.get(b.endpoint) ?? 0));
  }

  layout() {
    const area = $('#stage-area');
    const mode = this.tiles.size <= 1 ? 'tile' : state.layout;
    area.dataset.layout = mode;
    const tiles = this.order();
    if (mode === 'tile') {
      this.stage.classList.add('hidden'); this.film.classList.add('hidden'); this.grid.classList.remove('hidden');
      const shown = tiles.slice(0, MAX_GRID);
      for (const x of shown) if (x.el.parentNode !== this.grid || x.el.dataset.pos !== String(shown.indexOf(x))) { x.el.dataset.pos = String(shown.indexOf(x)); }
      this.place(this.grid, shown);
      for (const x of tiles.slice(MAX_GRID)) x.el.remove();
      const W = this.grid.clientWidth - 16; const H = this.grid.clientHeight - 16; const gap = 8; const n = shown.length || 1;
      let best = { w: 0, h: 0, cols: 1 };
      for (let cols = 1; cols <= n; cols++) {
        const rows = Math.ceil(n / cols);
        const w = Math.min((W - gap * (cols - 1)) / cols, ((H - gap * (rows - 1)) / rows) * 16 / 9);
        if (w > best.w) best = { w, h: (w * 9) / 16, cols };
      }
      this.grid.style.setProperty('--tile-w', `${Math.max(64, Math.floor(best.w))}px`);
      this.grid.style.setProperty('--tile-h', `${Math.max(36, Math.floor(best.h))}px`);
      this.grid.dataset.cols = String(best.cols);
    } else {
      this.grid.classList.add('hidden'); this.stage.classList.remove('hidden'); this.film.classList.remove('hidden');
      const key = this.stageKey();
      this.lastStage = key;
      const main = this.tiles.get(key);
      this.place(this.stage, main ? [main] : []);
      this.place(this.film, tiles.filter((x) => x !== main));
    }
    for (const x of this.tiles.values()) x.el.classList.toggle('on-stage', mode === 'stage' && x.el.parentNode === this.stage);
    cancelAnimationFrame(this.raf);
    this.raf = requestAnimationFrame(() => this.sendConstraints());
    setTimeout(() => this.sendConstraints(), 50); // hidden tabs: no rAF
  }
  place(container, list) {
    list.forEach((x, i) => { if (container.children[i] !== x.el) container.insertBefore(x.el, container.children[i] || null); });
    while (container.children.length > list.length) container.lastElementChild.remove();
  }

  // What is on screen decides what we receive.
  computeConstraints() {
    const dpr = window.devicePixelRatio || 1;
    const max_height = {}; const visible = new Set(); let onStage = null;
    const filmRect = this.film.getBoundingClientRect();
    for (const x of this.tiles.values()) {
      if (x.local || !x.el.isConnected) continue;
      const r = x.el.getBoundingClientRect();
      if (r.height < 1) continue;
      if (x.el.parentNode === this.film && (r.right < filmRect.left || r.left > filmRect.right || r.bottom < filmRect.top || r.top > filmRect.bottom)) continue;
      const h = r.height * dpr;
      max_height[x.endpoint + (x.screen ? '-s0' : '-v0')] = x.screen ? snapScreen(h) : snapCam(h);
      visible.add(x.endpoint);
      if (x.el.parentNode === this.stage) onStage = x.endpoint;
    }
    const remotes = [...state.participants.keys()].filter((id) => !isMe(id)).length;
    const configured = Number(state.web.lastN ?? -1);
    const limited = visible.size > 0 && visible.size < remotes; // nothing laid out yet (hidden page): no limit
    let last_n = limited ? visible.size : -1;
    if (configured >= 0) last_n = last_n < 0 ? configured : Math.min(last_n, configured);
    const pinned = limited ? [...(onStage ? [onStage] : []), ...[...visible].filter((e) => e !== onStage)] : onStage ? [onStage] : [];
    return { last_n, default_max_height: 180, max_height, pinned };
  }
  sendConstraints() {
    if (!this.mediaReady) return; // no endpoint on a bridge yet
    const c = this.override || this.computeConstraints();
    const s = JSON.stringify(c);
    if (s === this.lastConstraints) return;
    this.lastConstraints = s;
    this.sent = c;
    this.proto.constraints(c);
  }
  resetConstraints() { this.lastConstraints = ''; this.sendConstraints(); }

  setQuality(q) {
    this.quality = q;
    for (const x of this.tiles.values()) {
      const level = !q ? 'unknown' : x.local ? q.me.level : q.remote[x.key]?.level || 'unknown';
      x.conn.className = `conn ${level}`;
      x.conn.title = `${t('connection')}: ${t('conn_' + level)}`;
    }
  }

  react(endpoint, reaction) {
    const tl = this.tiles.get(endpoint);
    if (!tl) return;
    const r = document.createElement('div');
    r.className = 'reaction'; r.dataset.reaction = reaction;
    r.style.left = `${10 + Math.random() * 60}%`;
    r.innerHTML = icon(reaction);
    tl.layer.append(r);
    setTimeout(() => r.remove(), 3000);
  }
}
