// Notices (a stack of dismissable banners) and screen-reader announcements (live regions).
import { t } from './i18n.js';
import { icon } from './icons.js';

const shown = new Map();
export function notice(text, { level = 'info', sticky = false, key = text, timeout = 6000 } = {}) {
  const box = document.getElementById('notices');
  let n = shown.get(key);
  if (!n) {
    n = document.createElement('div');
    n.className = `notice ${level}`;
    n.setAttribute('role', level === 'error' ? 'alert' : 'status');
    n.innerHTML = `<span class="text"></span><button type="button" class="icon-btn" aria-label="${t('close')}">${icon('close')}</button>`;
    n.querySelector('button').onclick = () => dismiss(key);
    box.append(n); shown.set(key, n);
  }
  n.querySelector('.text').textContent = text;
  clearTimeout(n.timer);
  if (!sticky) n.timer = setTimeout(() => dismiss(key), timeout);
  // Before the meeting screen is shown, the prejoin/settings inline box shows it too.
  for (const id of ['pj-notice', 'settings-notice']) {
    const e = document.getElementById(id);
    if (e && e.offsetParent !== null || (id === 'pj-notice' && !document.getElementById('prejoin').classList.contains('hidden'))) { e.textContent = text; e.classList.remove('hidden'); }
  }
  return n;
}
export function dismiss(key) { const n = shown.get(key); if (n) { n.remove(); shown.delete(key); } }

export function announce(text, assertive = false) {
  const r = document.getElementById(assertive ? 'live-assertive' : 'live-polite');
  r.textContent = '';
  setTimeout(() => { r.textContent = text; }, 50);
}
