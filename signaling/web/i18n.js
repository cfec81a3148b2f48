// Every user-visible string, in one table per language. `t('key', {name})` fills {name}.
// The language comes from ?lang=, then the saved setting, then the browser; English is the fallback.
const STRINGS = {
  en: {
    home_title: 'Convene', home_text: 'Start or join a meeting.', room_name: 'Room name', go: 'Go',
    join_title: 'Join {room}', your_name: 'Your name', microphone: 'Microphone', camera: 'Camera', speaker: 'Speaker',
    mic_on: 'Microphone on', mic_off: 'Microphone off', cam_on: 'Camera on', cam_off: 'Camera off', join_meeting: 'Join meeting',
    password: 'Password', room_password: 'Room password', join: 'Join', back_home: 'Back to the home page',
    mute: 'Mute', unmute: 'Unmute', start_camera: 'Start camera', stop_camera: 'Stop camera',
    share_screen: 'Share screen', stop_sharing: 'Stop sharing', raise_hand: 'Raise hand', lower_hand: 'Lower hand',
    chat: 'Chat', participants: 'Participants', leave: 'Leave', end_for_all: 'End for all', settings: 'Settings',
    tile_view: 'Tile view', stage_view: 'Speaker view', reactions: 'Reactions', more: 'More', help: 'Shortcuts', notes: 'Shared notes',
    close: 'Close', send: 'Send', message: 'Message', everyone: 'Everyone', privately: '(privately)', to: '(to {name})',
    you: 'you', you_cap: 'You', screen_of: '{name} (screen)', pin: 'Pin', unpin: 'Unpin', moderator: 'Moderator',
    mute_all: 'Mute all', lobby: 'Lobby', set: 'Set', password_hint: 'Password (empty: unlock)',
    stop_video: 'Stop video', kick: 'Remove', make_moderator: 'Make moderator', admit: 'Admit', deny: 'Deny',
    waiting: '{name} is waiting', waiting_notice: '{names} waiting in the lobby (see Participants).',
    hands_queue: 'Raised hands', locked: 'locked', lobby_on: 'lobby on', recording: 'recording',
    start_recording: 'Start recording', stop_recording: 'Stop recording', rec_by: 'Recording, started by {by}',
    rec_in_progress: 'This meeting is being recorded (started by {by}).',
    rec_started: '{by} started recording.', rec_stopped_by: '{by} stopped recording.', rec_stopped_room: 'Recording stopped.', rec_stopped_fault: 'Recording stopped: the recorder or media server failed.',
    e_no_recorder: 'No recorder is free right now; try again later.',
    e_recording_storage_failed: 'The recorder cannot write (its storage is full or refused the files).',
    rec_stopped_storage: 'Recording stopped: the recorder\'s storage is full or refused the files.',
    connection: 'Connection', conn_good: 'good', conn_fair: 'fair', conn_poor: 'poor', conn_unknown: 'unknown',
    poor_connection: 'Your connection is poor; others may not see or hear you well.',
    reconnecting: 'Connection to the server lost; reconnecting…', reconnected: 'Reconnected.',
    migrating: 'Media server changed; reconnecting media…',
    bitrate: 'Bitrate', up: 'up', down: 'down', resolution: 'Resolution', fps: 'Frame rate', loss: 'Packet loss', rtt: 'Round trip',
    route: 'Route', relay: 'relayed (TURN)', direct: 'direct',
    quality: 'Send quality', q_high: 'High (720p)', q_standard: 'Standard (360p)', q_low: 'Low (180p)',
    noise_suppression: 'Noise suppression', echo_cancellation: 'Echo cancellation', language: 'Language', save: 'Save',
    display_name: 'Display name', devices: 'Devices', no_device: 'None',
    perm_denied: 'Camera or microphone access was denied. Allow it in the browser’s site settings, then reload.',
    device_unplugged: '{device} was disconnected; switched to {other}.', device_gone: '{device} was disconnected.',
    no_devices: 'No camera or microphone found; you can still listen and watch.',
    joined_notice: '{name} joined', left_notice: '{name} left', muted_by: '{by} muted your {what}.',
    what_audio: 'microphone', what_video: 'camera', chat_from: 'Message from {name}: {text}',
    removed_title: 'Removed', removed: '{by} removed you from the meeting.', ended_title: 'Meeting ended', ended: '{by} ended the meeting for everyone.',
    left_title: 'You left the meeting', rejoin: 'Rejoin', waiting_title: 'Waiting to be let in', waiting_text: 'A moderator has been told you are here.',
    not_admitted: 'Not admitted', cannot_join: 'Cannot join', screen_failed: 'Screen sharing was not started.',
    encrypted: 'Encrypted', reacted: '{name} reacted: {reaction}',
    r_like: 'Thumbs up', r_love: 'Love', r_laugh: 'Laugh', r_clap: 'Applause', r_surprise: 'Surprised', r_party: 'Celebrate',
    shortcuts: 'Keyboard shortcuts', k_m: 'Mute or unmute', k_v: 'Start or stop camera', k_d: 'Share screen',
    k_r: 'Raise or lower hand', k_c: 'Open or close chat', k_t: 'Switch tile and speaker view', k_p: 'Participants', k_help: 'This help',
    unread: '{n} unread', speaking: 'speaking', hand_raised: 'hand raised', muted: 'muted',
    e_auth_required: 'This server needs a token to join.', e_auth_failed: 'Your token was refused.',
    e_room_creation_forbidden: 'This meeting has not started yet. Only a host with a token can start it.',
    e_password_required: 'This meeting is locked with a password.', e_wrong_password: 'Wrong password.',
    e_lobby_denied: 'A moderator declined your request to join.', e_invalid_room: 'That is not a valid room name.',
    e_no_bridge: 'No media server is available right now; retrying…', e_media_error: 'Media negotiation failed.',
    e_not_moderator: 'Only moderators can do that.', e_too_long: 'That message is too long (at most 4096 characters).', e_rate_limited: 'Slow down: too many messages.',
    e2ee_label: 'End-to-end encryption passphrase (optional)', e2ee: 'End-to-end encryption', e2ee_on: 'end-to-end encrypted',
    e2ee_passphrase: 'Passphrase', e2ee_enter: 'Enter passphrase', e2ee_locked: 'Encrypted: enter the passphrase to see and hear this person.',
    e2ee_room_locked: 'This meeting is end-to-end encrypted. Enter its passphrase to see, hear and be heard.',
    e2ee_not_on: 'This meeting is not end-to-end encrypted; a moderator can turn it on.',
    e2ee_unsupported: 'This browser cannot do end-to-end encryption (no encoded transforms).',
    e2ee_need_passphrase: 'Enter a passphrase first, then share it with the others out of band.',
    spotlight: 'Spotlight', stop_spotlight: 'Stop spotlight', spotlighted: 'in the spotlight', spotlight_notice: '{name} is in the spotlight.',
    e_recording_e2ee: 'This meeting is end-to-end encrypted: it cannot be recorded.',
  },
  de: {
    home_title: 'Convene', home_text: 'Eine Besprechung starten oder beitreten.', room_name: 'Raumname', go: 'Los',
    join_title: '{room} beitreten', your_name: 'Ihr Name', microphone: 'Mikrofon', camera: 'Kamera', speaker: 'Lautsprecher',
    mic_on: 'Mikrofon an', mic_off: 'Mikrofon aus', cam_on: 'Kamera an', cam_off: 'Kamera aus', join_meeting: 'Besprechung beitreten',
    password: 'Passwort', room_password: 'Raumpasswort', join: 'Beitreten', back_home: 'Zur Startseite',
    mute: 'Stummschalten', unmute: 'Stummschaltung aufheben', start_camera: 'Kamera starten', stop_camera: 'Kamera stoppen',
    share_screen: 'Bildschirm teilen', stop_sharing: 'Teilen beenden', raise_hand: 'Hand heben', lower_hand: 'Hand senken',
    chat: 'Chat', participants: 'Teilnehmende', leave: 'Verlassen', end_for_all: 'Für alle beenden', settings: 'Einstellungen',
    tile_view: 'Kacheln', stage_view: 'Sprecher', reactions: 'Reaktionen', more: 'Mehr', help: 'Kürzel', notes: 'Gemeinsame Notizen',
    close: 'Schließen', send: 'Senden', message: 'Nachricht', everyone: 'Alle', privately: '(privat)', to: '(an {name})',
    you: 'Sie', you_cap: 'Sie', screen_of: '{name} (Bildschirm)', pin: 'Anheften', unpin: 'Lösen', moderator: 'Moderation',
    mute_all: 'Alle stummschalten', lobby: 'Warteraum', set: 'Setzen', password_hint: 'Passwort (leer: entsperren)',
    stop_video: 'Video stoppen', kick: 'Entfernen', make_moderator: 'Zur Moderation machen', admit: 'Einlassen', deny: 'Ablehnen',
    waiting: '{name} wartet', waiting_notice: '{names} im Warteraum (siehe Teilnehmende).',
    hands_queue: 'Gehobene Hände', locked: 'gesperrt', lobby_on: 'Warteraum an', recording: 'Aufnahme',
    start_recording: 'Aufnahme starten', stop_recording: 'Aufnahme beenden', rec_by: 'Aufnahme, gestartet von {by}',
    rec_in_progress: 'Diese Besprechung wird aufgezeichnet (gestartet von {by}).',
    rec_started: '{by} hat die Aufnahme gestartet.', rec_stopped_by: '{by} hat die Aufnahme beendet.', rec_stopped_room: 'Aufnahme beendet.', rec_stopped_fault: 'Aufnahme beendet: Rekorder oder Medienserver ausgefallen.',
    e_no_recorder: 'Gerade ist kein Rekorder frei; bitte später erneut versuchen.',
    e_recording_storage_failed: 'Der Rekorder kann nicht schreiben (Speicher voll oder verweigert).',
    rec_stopped_storage: 'Aufnahme beendet: Der Speicher des Rekorders ist voll oder verweigert die Dateien.',
    connection: 'Verbindung', conn_good: 'gut', conn_fair: 'mittel', conn_poor: 'schlecht', conn_unknown: 'unbekannt',
    poor_connection: 'Ihre Verbindung ist schlecht; andere sehen oder hören Sie evtl. nicht gut.',
    reconnecting: 'Verbindung zum Server verloren; verbinde neu…', reconnected: 'Wieder verbunden.',
    migrating: 'Medienserver gewechselt; Medien werden neu verbunden…',
    bitrate: 'Bitrate', up: 'hoch', down: 'runter', resolution: 'Auflösung', fps: 'Bildrate', loss: 'Paketverlust', rtt: 'Umlaufzeit',
    route: 'Weg', relay: 'weitergeleitet (TURN)', direct: 'direkt',
    quality: 'Sendequalität', q_high: 'Hoch (720p)', q_standard: 'Standard (360p)', q_low: 'Niedrig (180p)',
    noise_suppression: 'Rauschunterdrückung', echo_cancellation: 'Echounterdrückung', language: 'Sprache', save: 'Speichern',
    display_name: 'Anzeigename', devices: 'Geräte', no_device: 'Keins',
    perm_denied: 'Der Zugriff auf Kamera oder Mikrofon wurde verweigert. Erlauben Sie ihn in den Website-Einstellungen und laden Sie neu.',
    device_unplugged: '{device} wurde getrennt; gewechselt zu {other}.', device_gone: '{device} wurde getrennt.',
    no_devices: 'Keine Kamera und kein Mikrofon gefunden; Sie können trotzdem zuhören und zusehen.',
    joined_notice: '{name} ist beigetreten', left_notice: '{name} hat verlassen', muted_by: '{by} hat Ihr {what} stummgeschaltet.',
    what_audio: 'Mikrofon', what_video: 'Kamera', chat_from: 'Nachricht von {name}: {text}',
    removed_title: 'Entfernt', removed: '{by} hat Sie aus der Besprechung entfernt.', ended_title: 'Besprechung beendet', ended: '{by} hat die Besprechung für alle beendet.',
    left_title: 'Sie haben die Besprechung verlassen', rejoin: 'Erneut beitreten', waiting_title: 'Warten auf Einlass', waiting_text: 'Die Moderation wurde benachrichtigt.',
    not_admitted: 'Nicht eingelassen', cannot_join: 'Beitritt nicht möglich', screen_failed: 'Bildschirmfreigabe wurde nicht gestartet.',
    encrypted: 'Verschlüsselt', reacted: '{name} reagiert: {reaction}',
    r_like: 'Daumen hoch', r_love: 'Herz', r_laugh: 'Lachen', r_clap: 'Applaus', r_surprise: 'Überrascht', r_party: 'Feiern',
    shortcuts: 'Tastenkürzel', k_m: 'Stummschalten an/aus', k_v: 'Kamera an/aus', k_d: 'Bildschirm teilen',
    k_r: 'Hand heben/senken', k_c: 'Chat öffnen/schließen', k_t: 'Kachel-/Sprecheransicht', k_p: 'Teilnehmende', k_help: 'Diese Hilfe',
    unread: '{n} ungelesen', speaking: 'spricht', hand_raised: 'Hand gehoben', muted: 'stumm',
    e_auth_required: 'Dieser Server verlangt ein Token.', e_auth_failed: 'Ihr Token wurde abgelehnt.',
    e_room_creation_forbidden: 'Die Besprechung hat noch nicht begonnen. Nur ein Host mit Token kann sie starten.',
    e_password_required: 'Diese Besprechung ist mit einem Passwort gesperrt.', e_wrong_password: 'Falsches Passwort.',
    e_lobby_denied: 'Die Moderation hat Ihre Anfrage abgelehnt.', e_invalid_room: 'Das ist kein gültiger Raumname.',
    e_no_bridge: 'Gerade ist kein Medienserver verfügbar; neuer Versuch…', e_media_error: 'Medienaushandlung fehlgeschlagen.',
    e_not_moderator: 'Nur die Moderation kann das.', e_too_long: 'Die Nachricht ist zu lang (höchstens 4096 Zeichen).', e_rate_limited: 'Langsamer: zu viele Nachrichten.',
    e2ee_label: 'Passphrase für Ende-zu-Ende-Verschlüsselung (optional)', e2ee: 'Ende-zu-Ende-Verschlüsselung', e2ee_on: 'Ende-zu-Ende-verschlüsselt',
    e2ee_passphrase: 'Passphrase', e2ee_enter: 'Passphrase eingeben', e2ee_locked: 'Verschlüsselt: Geben Sie die Passphrase ein, um diese Person zu sehen und zu hören.',
    e2ee_room_locked: 'Diese Besprechung ist Ende-zu-Ende-verschlüsselt. Geben Sie die Passphrase ein, um zu sehen, zu hören und gehört zu werden.',
    e2ee_not_on: 'Diese Besprechung ist nicht Ende-zu-Ende-verschlüsselt; ein Moderator kann es einschalten.',
    e2ee_unsupported: 'Dieser Browser kann keine Ende-zu-Ende-Verschlüsselung (keine Encoded Transforms).',
    e2ee_need_passphrase: 'Geben Sie zuerst eine Passphrase ein und teilen Sie sie den anderen auf anderem Weg mit.',
    spotlight: 'Hervorheben', stop_spotlight: 'Hervorhebung beenden', spotlighted: 'hervorgehoben', spotlight_notice: '{name} ist hervorgehoben.',
    e_recording_e2ee: 'Diese Besprechung ist Ende-zu-Ende-verschlüsselt: Sie kann nicht aufgezeichnet werden.',
  },
};
export const LANGUAGES = { en: 'English', de: 'Deutsch' };

function pick() {
  const q = new URLSearchParams(location.search).get('lang');
  const saved = localStorage.getItem('convene.lang');
  for (const l of [q, saved, ...(navigator.languages || [])]) {
    const short = (l || '').slice(0, 2).toLowerCase();
    if (STRINGS[short]) return short;
  }
  return 'en';
}
export let lang = pick();
export function setLang(l) { if (STRINGS[l]) { lang = l; localStorage.setItem('convene.lang', l); } }

export function t(key, vars = {}) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

// Static markup: [data-i18n] text, [data-i18n-label] aria-label+title, [data-i18n-ph] placeholder.
export function translate(root = document) {
  document.documentElement.lang = lang;
  for (const e of root.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll('[data-i18n-label]')) { e.setAttribute('aria-label', t(e.dataset.i18nLabel)); e.title = t(e.dataset.i18nLabel); }
  for (const e of root.querySelectorAll('[data-i18n-ph]')) e.placeholder = t(e.dataset.i18nPh);
}
