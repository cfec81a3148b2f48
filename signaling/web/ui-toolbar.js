// Toolbar, reactions menu, keyboard shortcuts (M V D R C T P ?) and their help dialog.
import { state, myInfo } from './store.js';
import { t } from './i18n.js';
import { icon } from './icons.js';
import { REACTIONS } from './protocol.js';

const $ = (s) => document.querySelector(s);
const SHORTCUTS = [['M', 'k_m', 'btn-mic'], ['V', 'k_v', 'btn-cam'], ['D', 'k_d', 'btn-screen'], ['R', 'k_r', 'btn-hand'],
  ['C', 'k_c', 'btn-chat'], ['T', 'k_t', 'btn-layout'], ['P', 'k_p', 'btn-people'], ['?', 'k_help', 'btn-help']];

function setButton(b, iconName, label, { pressed = null, badge = '' } = {}) {
  // The visible label is the accessible name (also when narrow screens hide it visually).
  const html = `${icon(iconName)}<span class="tool-label">${label}</span>${badge ? `<span class="badge"><span class="sr-only">, </span>${badge}<span class="sr-only"> ${t('unread', { n: '' }).trim()}</span></span>` : ''}`;
  if (b.dataset.html !== html) { b.dataset.html = html; b.innerHTML = html; }
  b.title = label + (b.getAttribute('aria-keyshortcuts') ? ` (${b.getAttribute('aria-keyshortcuts')})` : '');
  if (pressed !== null) b.setAttribute('aria-pressed', String(pressed));
}

// `template` with each `{room}` replaced by the encoded room name; null unless an http(s) URL.
export function notesUrl(template, room) {
  if (typeof template !== 'string' || !template.includes('{room}') || !room) return null;
  const url = template.split('{room}').join(encodeURIComponent(room));
  try { const u = new URL(url); return u.protocol === 'https:' || u.protocol === 'http:' ? url : null; } catch { return null; }
}

export class Toolbar {
  constructor(actions) {
    this.a = actions;
    $('#btn-mic').onclick = () => actions.toggleMic();
    $('#btn-cam').onclick = () => actions.toggleCam();
    $('#btn-screen').onclick = () => actions.toggleScreen();
    $('#btn-hand').onclick = () => actions.toggleHand();
    $('#btn-chat').onclick = () => actions.togglePanel('chat');
    $('#btn-people').onclick = () => actions.togglePanel('people');
    $('#btn-layout').onclick = () => actions.toggleLayout();
    $('#btn-settings').onclick = () => actions.openSettings();
    $('#btn-help').onclick = () => this.help();
    $('#btn-leave').onclick = () => actions.leave();
    $('#btn-end').onclick = () => actions.endForAll();
    const menu = $('#reaction-menu');
    $('#btn-react').onclick = () => this.menu(menu.classList.contains('hidden'));
    menu.addEventListener('keydown', (e) => {
      const items = [...menu.querySelectorAll('button')]; const i = items.indexOf(document.activeElement);
      if (e.key === 'ArrowRight' || e.key === 'ArrowDown') { e.preventDefault(); items[(i + 1) % items.length].focus(); }
      if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') { e.preventDefault(); items[(i - 1 + items.length) % items.length].focus(); }
      if (e.key === 'Escape') { this.menu(false); $('#btn-react').focus(); }
    });
    document.addEventListener('keydown', (e) => this.key(e));
  }
  menu(open) {
    const menu = $('#reaction-menu');
    menu.classList.toggle('hidden', !open);
    $('#btn-react').setAttribute('aria-expanded', String(open));
    if (open) menu.querySelector('button')?.focus();
  }
  key(e) {
    if (!state.me || state.left || e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target.tagName || '').toLowerCase();
    if (['input', 'textarea', 'select'].includes(tag) || e.target.isContentEditable) return;
    if (document.querySelector('dialog[open]')) return;
    if (e.key === 'Escape') { this.menu(false); this.a.closePopover(); return; }
    const k = e.key === '?' ? '?' : e.key.toUpperCase();
    const s = SHORTCUTS.find(([key]) => key === k);
    if (!s) return;
    e.preventDefault();
    $('#' + s[2]).click();
  }
  help() {
    $('#help-list').replaceChildren(...SHORTCUTS.flatMap(([k, label]) => [
      Object.assign(document.createElement('dt'), { innerHTML: `<kbd>${k}</kbd>` }),
      Object.assign(document.createElement('dd'), { textContent: t(label) })]));
    $('#help-dialog').showModal();
  }
  // The shared-notes link (the shard's `web.notesUrl`, `{room}` standing for the room name):
  // shown only when configured; its address is set as `href`, never written into HTML.
  notes() {
    const a = $('#btn-notes');
    const url = notesUrl(state.web?.notesUrl, state.room?.name);
    a.classList.toggle('hidden', !url);
    if (!url) { a.removeAttribute('href'); return; }
    if (a.getAttribute('href') !== url) a.href = url;
    setButton(a, 'notes', t('notes'));
  }
  render() {
    if (!state.me) return;
    setButton($('#btn-mic'), state.audioMuted ? 'micOff' : 'mic', state.audioMuted ? t('unmute') : t('mute'), { pressed: state.audioMuted });
    $('#btn-mic').classList.toggle('off', state.audioMuted);
    const camOff = state.videoMuted || !this.a.hasCamera();
    setButton($('#btn-cam'), camOff ? 'camOff' : 'cam', camOff ? t('start_camera') : t('stop_camera'), { pressed: camOff });
    $('#btn-cam').classList.toggle('off', camOff);
    setButton($('#btn-screen'), 'screen', state.screenOn ? t('stop_sharing') : t('share_screen'), { pressed: state.screenOn });
    $('#btn-screen').classList.toggle('active', state.screenOn);
    setButton($('#btn-hand'), 'hand', state.hand ? t('lower_hand') : t('raise_hand'), { pressed: state.hand });
    $('#btn-hand').classList.toggle('active', state.hand);
    setButton($('#btn-react'), 'smile', t('reactions'));
    setButton($('#btn-chat'), 'chat', t('chat'), { pressed: state.panel === 'chat', badge: state.unread ? String(state.unread) : '' });
    setButton($('#btn-people'), 'people', t('participants'), { pressed: state.panel === 'people', badge: state.lobby.length && myInfo()?.moderator ? String(state.lobby.length) : '' });
    setButton($('#btn-layout'), state.layout === 'tile' ? 'stage' : 'grid', state.layout === 'tile' ? t('stage_view') : t('tile_view'));
    this.notes();
    setButton($('#btn-settings'), 'settings', t('settings'));
    setButton($('#btn-help'), 'help', t('help'));
    setButton($('#btn-leave'), 'leave', t('leave'));
    setButton($('#btn-end'), 'close', t('end_for_all'));
    $('#btn-end').classList.toggle('hidden', !myInfo()?.moderator);
    const menu = $('#reaction-menu');
    if (menu.dataset.lang !== t('reactions')) {
      menu.dataset.lang = t('reactions');
      menu.replaceChildren(...REACTIONS.map((r) => {
        const b = document.createElement('button');
        b.type = 'button'; b.setAttribute('role', 'menuitem'); b.dataset.reaction = r;
        b.innerHTML = icon(r); b.setAttribute('aria-label', t('r_' + r)); b.title = t('r_' + r);
        b.onclick = () => { this.a.react(r); this.menu(false); $('#btn-react').focus(); };
        return b;
      }));
    }
  }
}
