// Settings dialog: devices switched live, display name, send quality, audio processing,
// language; everything remembered in localStorage (media.js keeps the device preferences).
import { state } from './store.js';
import { t, LANGUAGES, lang, setLang } from './i18n.js';

const $ = (s) => document.querySelector(s);

export function fillDeviceSelect(sel, devices, kind, current) {
  const list = devices.filter((d) => d.kind === kind);
  const opts = list.map((d, i) => Object.assign(document.createElement('option'), { value: d.deviceId, textContent: d.label || `${t(kind === 'audioinput' ? 'microphone' : kind === 'videoinput' ? 'camera' : 'speaker')} ${i + 1}` }));
  if (!opts.length) opts.push(Object.assign(document.createElement('option'), { value: '', textContent: t('no_device') }));
  sel.replaceChildren(...opts);
  if (current && list.some((d) => d.deviceId === current)) sel.value = current;
}

export class Settings {
  constructor({ media, proto, onName, onLang }) {
    this.media = media; this.proto = proto;
    const d = $('#settings-dialog');
    $('#set-mic').onchange = (e) => media.switchDevice('audio', e.target.value, { enabled: !state.audioMuted });
    $('#set-cam').onchange = (e) => media.switchDevice('video', e.target.value, { enabled: !state.videoMuted });
    $('#set-speaker').onchange = (e) => media.setSpeaker(e.target.value);
    $('#set-quality').onchange = (e) => media.setQuality(e.target.value);
    const ap = () => media.setAudioProcessing($('#set-ns').checked, $('#set-ec').checked);
    $('#set-ns').onchange = ap; $('#set-ec').onchange = ap;
    $('#set-name').onchange = (e) => { const n = e.target.value.trim(); if (n) { localStorage.setItem('convene.name', n); onName(n); } };
    $('#set-lang').replaceChildren(...Object.entries(LANGUAGES).map(([v, n]) => Object.assign(document.createElement('option'), { value: v, textContent: n })));
    $('#set-lang').onchange = (e) => { setLang(e.target.value); onLang(); };
    d.addEventListener('close', () => $('#btn-settings').focus());
  }
  fill() {
    const m = this.media; const p = m.prefs;
    fillDeviceSelect($('#set-mic'), m.devices, 'audioinput', m.local.audio?.getSettings().deviceId || p.micId);
    fillDeviceSelect($('#set-cam'), m.devices, 'videoinput', m.local.video?.getSettings().deviceId || p.camId);
    fillDeviceSelect($('#set-speaker'), m.devices, 'audiooutput', p.speakerId);
    $('#set-speaker').disabled = typeof HTMLMediaElement.prototype.setSinkId !== 'function';
    $('#set-quality').value = p.quality;
    $('#set-ns').checked = p.noiseSuppression; $('#set-ec').checked = p.echoCancellation;
    $('#set-name').value = state.me?.name || localStorage.getItem('convene.name') || '';
    $('#set-lang').value = lang;
  }
  open() { this.fill(); $('#settings-notice').classList.add('hidden'); $('#settings-dialog').showModal(); }
}
