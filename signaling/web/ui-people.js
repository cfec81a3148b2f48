// Participants panel: the list, raised hands in queue order, moderation and the lobby.
import { state, isMe, myInfo } from './store.js';
import { t } from './i18n.js';
import { icon } from './icons.js';
import { dismiss } from './ui-notices.js';

const $ = (s) => document.querySelector(s);
const btn = (label, action, onclick) => {
  const b = Object.assign(document.createElement('button'), { type: 'button', textContent: label, onclick, className: 'small' });
  b.dataset.action = action;
  return b;
};

export class People {
  constructor({ proto, notice }) {
    this.proto = proto; this.notice = notice; this.lastLobby = '';
    $('#mute-all').onclick = () => proto.muteAll('audio');
    $('#rec-toggle').onclick = () => proto.setRecording(!state.room?.recording);
    $('#lobby-toggle').onchange = (e) => proto.setLobby(e.target.checked);
    $('#lock-form').onsubmit = (e) => { e.preventDefault(); proto.setPassword($('#lock-password').value); };
  }
  render() {
    if (!state.me) return;
    const mod = !!myInfo()?.moderator;
    const r = state.room || {};
    $('#mod-room').classList.toggle('hidden', !mod);
    $('#lobby-toggle').checked = !!r.lobby;
    const rec = $('#rec-toggle');
    const recHtml = `${icon('rec', 'rec')}<span>${t(r.recording ? 'stop_recording' : 'start_recording')}</span>`;
    if (rec.dataset.html !== recHtml) { rec.dataset.html = recHtml; rec.innerHTML = recHtml; }
    rec.setAttribute('aria-pressed', String(!!r.recording));
    const sig = JSON.stringify([mod, [...state.participants.values()], state.hands, state.dominant, r.spotlight]);
    if (sig !== this.sig) {
      this.sig = sig;
      $('#participant-list').replaceChildren(...[...state.participants.values()].map((p) => {
        const li = document.createElement('li');
        li.dataset.id = p.id;
        const flags = [p.hand_raised && icon('hand'), p.moderator && icon('star'), p.audio_muted && icon('micOff'), p.video_muted && icon('camOff')].filter(Boolean).join('');
        const name = document.createElement('span'); name.className = 'pname';
        name.textContent = p.name + (isMe(p.id) ? ` (${t('you')})` : '');
        const f = document.createElement('span'); f.className = 'flags'; f.innerHTML = flags;
        // Said as text (an aria-label on a plain span is not allowed), after the icons.
        const said = [p.moderator && t('moderator'), p.hand_raised && t('hand_raised'), p.audio_muted && t('muted'), p.video_muted && t('cam_off')].filter(Boolean).join(', ');
        if (said) f.append(Object.assign(document.createElement('span'), { className: 'sr-only', textContent: `(${said})` }));
        li.append(name, f);
        if (mod) {
          const on = r.spotlight === p.id;
          const b = btn(t(on ? 'stop_spotlight' : 'spotlight'), 'spotlight', () => this.proto.spotlight(on ? null : p.id));
          b.setAttribute('aria-pressed', String(on));
          b.setAttribute('aria-label', `${b.textContent}: ${p.name}`);
          li.append(b);
        }
        if (mod && !isMe(p.id)) {
          li.append(
            btn(t('mute'), 'mute', () => this.proto.mute(p.id, 'audio')),
            btn(t('stop_video'), 'stop-video', () => this.proto.mute(p.id, 'video')),
            btn(t('kick'), 'kick', () => this.proto.kick(p.id)),
          );
          if (!p.moderator) li.append(btn(t('make_moderator'), 'grant', () => this.proto.grantModerator(p.id)));
          for (const b of li.querySelectorAll('button')) b.setAttribute('aria-label', `${b.textContent}: ${p.name}`);
        }
        return li;
      }));
      $('#hands-queue').classList.toggle('hidden', !state.hands.length);
      $('#hands-list').replaceChildren(...state.hands.map((id) => Object.assign(document.createElement('li'), { textContent: state.participants.get(id)?.name || id })));
    }
    const waiting = mod ? state.lobby : [];
    $('#lobby-list').replaceChildren(...waiting.map((w) => {
      const d = document.createElement('div');
      d.className = 'waiting'; d.dataset.id = w.id;
      const s = document.createElement('span'); s.textContent = t('waiting', { name: w.name });
      d.append(s, btn(t('admit'), 'admit', () => this.proto.lobbyAdmit(w.id)), btn(t('deny'), 'deny', () => this.proto.lobbyDeny(w.id)));
      return d;
    }));
    const lobbySig = waiting.map((w) => w.id).join();
    if (lobbySig !== this.lastLobby) {
      this.lastLobby = lobbySig;
      if (waiting.length) this.notice(t('waiting_notice', { names: waiting.map((w) => w.name).join(', ') }), { key: 'lobby', sticky: true, level: 'warn' });
      else dismiss('lobby');
    }
  }
}
