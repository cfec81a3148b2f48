// Chat panel: room and private messages, timestamps, safe clickable links, unread count.
import { state, changed, isMe } from './store.js';
import { t } from './i18n.js';

const $ = (s) => document.querySelector(s);
const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

// Text nodes and <a> elements only: message text never becomes markup.
export function linkify(text) {
  const out = []; let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    let href = null;
    try { const u = new URL(m[0]); if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href; } catch { /* not a URL */ }
    if (href) out.push(Object.assign(document.createElement('a'), { href, textContent: m[0], target: '_blank', rel: 'noopener noreferrer nofollow' }));
    else out.push(document.createTextNode(m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

export class Chat {
  constructor({ proto }) {
    this.proto = proto; this.count = 0;
    $('#chat-form').onsubmit = (e) => {
      e.preventDefault();
      const text = $('#chat-input').value;
      if (!text.trim()) return;
      this.proto.chat(text, $('#chat-to').value);
      $('#chat-input').value = '';
    };
  }
  render() {
    const log = $('#chat-log');
    for (; this.count < state.chat.length; this.count++) {
      const m = state.chat[this.count];
      const who = isMe(m.from) ? t('you_cap') : m.name;
      const target = m.private ? (isMe(m.to) ? ` ${t('privately')}` : ` ${t('to', { name: state.participants.get(m.to)?.name || '?' })}`) : '';
      const line = document.createElement('div');
      line.className = 'msg' + (m.private ? ' private' : '');
      const time = document.createElement('time');
      time.dateTime = m.at.toISOString();
      time.textContent = m.at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      const b = document.createElement('b'); b.textContent = who + target;
      const body = document.createElement('div'); body.className = 'text'; body.append(...linkify(m.text));
      line.append(b, ' ', time, body);
      log.append(line);
      log.scrollTop = 1e9;
    }
    const sel = $('#chat-to'); const cur = sel.value;
    const opts = [['', t('everyone')], ...[...state.participants.values()].filter((p) => !isMe(p.id)).map((p) => [p.id, p.name])];
    if (sel.dataset.sig !== JSON.stringify(opts)) {
      sel.dataset.sig = JSON.stringify(opts);
      sel.replaceChildren(...opts.map(([v, n]) => Object.assign(document.createElement('option'), { value: v, textContent: n })));
      sel.value = opts.some(([v]) => v === cur) ? cur : '';
    }
  }
  opened() { state.unread = 0; changed(); }
}
