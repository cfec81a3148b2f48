// Browser scenarios against a running signaling + bridges (started by run.sh inside a private
// network namespace). Prints one line per check and a final "N passed, N failed".
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, openSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';

const BASE = process.env.BASE_URL || 'http://localhost:18080/';
const JWT_BASE = process.env.JWT_BASE_URL || 'http://localhost:18081/';
const JWT_SECRET = process.env.JWT_SECRET || 'test-jwt-secret';
const BRIDGE_PIDS = Object.fromEntries((process.env.BRIDGE_PIDS || '').split(',').filter(Boolean).map((s) => s.split('=')));
const ONLY = process.env.ONLY ? process.env.ONLY.split(',') : null;
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--allow-loopback-in-peer-connection',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required'];

let passed = 0; let failed = 0;
const dirs = []; const contexts = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(...a);

async function open(url, label) {
  const dir = mkdtempSync(join(tmpdir(), 'convene-chromium-'));
  dirs.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: '/usr/bin/chromium', headless: true, args: FLAGS, viewport: { width: 960, height: 600 } });
  contexts.push(ctx);
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('pageerror', (e) => log(`  [${label}] page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') log(`  [${label}] console: ${m.text()}`); });
  const t0 = Date.now();
  await page.goto(url);
  return { page, ctx, label, t0 };
}
async function close(p) { await p.ctx.close().catch(() => {}); }

async function waitFor(what, fn, timeoutMs = 20000, every = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await sleep(every);
  }
  throw new Error(`timed out waiting for ${what} (${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

const stats = (p) => p.page.evaluate(() => window.convene.stats());
const myId = (p) => p.page.evaluate(() => window.convene.state.me?.id);

// Remote camera frames decoded per endpoint.
async function framesByEndpoint(p, source = 'camera') {
  const s = await stats(p);
  const out = {};
  for (const v of s.video) if (v.endpoint && v.source === source) out[v.endpoint] = (out[v.endpoint] || 0) + v.framesDecoded;
  return { frames: out, audioBytes: s.audioBytes, migrations: s.migrations };
}

// Every page decodes growing video from each of the others (and audio bytes grow).
async function allDecode(pages, source = 'camera', timeoutMs = 25000) {
  const ids = await waitFor('joined', async () => { const ids = await Promise.all(pages.map(myId)); return ids.every(Boolean) && ids; }, 15000);
  const before = await Promise.all(pages.map((p) => framesByEndpoint(p, source)));
  try {
    await allDecodeWait(pages, ids, before, source, timeoutMs);
  } catch (e) {
    for (const p of pages) log(`  ${p.label} (${await myId(p)}): ${JSON.stringify(await stats(p))}`);
    throw e;
  }
}

async function allDecodeWait(pages, ids, before, source, timeoutMs) {
  await waitFor(`${source} frames decoded by all`, async () => {
    for (let i = 0; i < pages.length; i++) {
      const now = await framesByEndpoint(pages[i], source);
      for (let j = 0; j < pages.length; j++) {
        if (i === j) continue;
        if (!((now.frames[ids[j]] || 0) > (before[i].frames[ids[j]] || 0) + 5)) return false;
      }
      if (source === 'camera' && !(now.audioBytes > before[i].audioBytes + 1000)) return false;
    }
    return true;
  }, timeoutMs, 250);
}

async function check(name, fn) {
  if (ONLY && !ONLY.some((o) => name.startsWith(o))) return;
  const t = Date.now();
  try {
    await fn();
    passed++; log(`PASS ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++; log(`FAIL ${name}: ${e.message}`);
  }
}

function token(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const h = b64({ alg: 'HS256', typ: 'JWT' });
  const p = b64(claims);
  const sig = createHmac('sha256', JWT_SECRET).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

async function threeDecode(room, extra = '') {
  const names = ['alice', 'bob', 'carol'];
  const pages = await Promise.all(names.map((n) => open(`${BASE}${room}?name=${n}&autojoin=1${extra}`, n)));
  // page-open -> first remote frame decoded, per participant
  await Promise.all(pages.map(async (p) => {
    await waitFor(`${p.label} first remote frame`, async () => {
      const s = await stats(p);
      return s.video.some((v) => v.framesDecoded > 0);
    }, 30000, 50);
    p.firstFrameMs = Date.now() - p.t0;
  }));
  for (const p of pages) log(`  ${room}: ${p.label} page-open -> first remote frame decoded: ${p.firstFrameMs} ms`);
  await allDecode(pages);
  return pages;
}

let main = [];
try {
  await check('three participants decode each other (video + audio)', async () => {
    main = await threeDecode('standup');
  });

  await check('mute state reaches the others', async () => {
    if (main.length < 3) throw new Error('no call');
    const [a, b, c] = main;
    const aid = await myId(a);
    await a.page.click('#btn-mic');
    for (const o of [b, c]) {
      await waitFor('mute shown', () => o.page.evaluate((id) => document.querySelector(`.tile[data-endpoint="${id}"]:not(.screen)`)?.dataset.audioMuted === 'true', aid), 5000);
    }
    await a.page.click('#btn-mic');
    for (const o of [b, c]) {
      await waitFor('unmute shown', () => o.page.evaluate((id) => document.querySelector(`.tile[data-endpoint="${id}"]:not(.screen)`)?.dataset.audioMuted === 'false', aid), 5000);
    }
  });

  await check('receiver constraints choose the simulcast layer', async () => {
    if (main.length < 3) throw new Error('no call');
    const r = main[2];
    const heights = async () => (await stats(r)).video.filter((v) => v.source === 'camera' && v.framesDecoded > 0).map((v) => v.frameHeight);
    log(`  ${r.label} receives camera heights ${JSON.stringify(await heights())} with the layout's constraints`);
    await r.page.evaluate(() => window.convene.overrideConstraints({ last_n: -1, default_max_height: 180, max_height: {} }));
    try {
      const h = await waitFor('heights <= 180', async () => { const h = await heights(); return h.length >= 2 && h.every((x) => x > 0 && x <= 180) && h; }, 15000, 250);
      log(`  with max height 180: ${JSON.stringify(h)}`);
    } finally {
      await r.page.evaluate(() => window.convene.overrideConstraints(null));
    }
  });

  await check('screen share reaches the others', async () => {
    if (main.length < 3) throw new Error('no call');
    const [a, b, c] = main;
    // Headless Chromium has no screen to capture: share a canvas stream through the same path.
    await a.page.evaluate(() => {
      const cv = document.createElement('canvas'); cv.width = 1280; cv.height = 720;
      const g = cv.getContext('2d'); let n = 0;
      setInterval(() => { g.fillStyle = `hsl(${(n += 7) % 360},70%,50%)`; g.fillRect(0, 0, 1280, 720); g.fillStyle = '#fff'; g.font = '80px sans-serif'; g.fillText(`slide ${n}`, 100, 300); }, 66);
      return window.convene.startScreen(cv.captureStream(15));
    });
    const aid = await myId(a);
    for (const o of [b, c]) {
      const before = (await framesByEndpoint(o, 'screen')).frames[aid] || 0;
      await waitFor(`${o.label} decodes the screen`, async () => ((await framesByEndpoint(o, 'screen')).frames[aid] || 0) > before + 5, 20000, 250);
    }
    await a.page.evaluate(() => window.convene.stopScreen());
  });

  await check('lobby knock admitted by the moderator', async () => {
    if (main.length < 3) throw new Error('no call');
    // The first of the three to join is the moderator (they join concurrently).
    const mods = await Promise.all(main.map((p) => p.page.evaluate(() => window.convene.state.me?.moderator === true)));
    const a = main[mods.indexOf(true)];
    if (!a) throw new Error('no moderator among the participants');
    await a.page.evaluate(() => { document.querySelector('#lobby-toggle').checked = true; document.querySelector('#lobby-toggle').dispatchEvent(new Event('change')); });
    await waitFor('lobby on', () => a.page.evaluate(() => window.convene.state.room.lobby === true), 5000);
    const d = await open(`${BASE}standup?name=dave&autojoin=1`, 'dave');
    try {
      await waitFor('dave waits', () => d.page.evaluate(() => document.querySelector('#message-title').textContent.includes('Waiting')), 10000);
      await waitFor('moderator sees knock', () => a.page.evaluate(() => window.convene.state.lobby.some((w) => w.name === 'dave')), 5000);
      await a.page.evaluate(() => document.querySelector('#lobby-list .waiting button').click());
      await waitFor('dave joined', () => d.page.evaluate(() => !!window.convene.state.me && !document.querySelector('#meeting').classList.contains('hidden')), 10000);
      await waitFor('dave decodes', async () => (await stats(d)).video.some((v) => v.framesDecoded > 0), 20000, 250);
    } finally {
      await close(d);
      await a.page.evaluate(() => { document.querySelector('#lobby-toggle').checked = false; document.querySelector('#lobby-toggle').dispatchEvent(new Event('change')); });
    }
  });

  await check('moderator: mute one, password lock, kick', async () => {
    if (main.length < 3) throw new Error('no call');
    const mods = await Promise.all(main.map((p) => p.page.evaluate(() => window.convene.state.me?.moderator === true)));
    const a = main[mods.indexOf(true)];
    const b = main[mods.indexOf(false)];
    const bid = await myId(b);
    await a.page.evaluate((id) => document.querySelector(`#participant-list li[data-id="${id}"] button`).click(), bid);
    await waitFor('target muted by moderator', () => b.page.evaluate(() => window.convene.state.audioMuted === true && window.convene.state.local.audio?.enabled === false), 5000);
    await b.page.evaluate(() => window.convene.setMic(true));
    await a.page.evaluate(() => { document.querySelector('#lock-password').value = 'hunter2'; document.querySelector('#lock-form').requestSubmit(); });
    await waitFor('room locked', () => b.page.evaluate(() => window.convene.state.room.locked === true), 5000);
    const e = await open(`${BASE}standup?name=eve&autojoin=1`, 'eve');
    try {
      await waitFor('password asked', () => e.page.evaluate(() => window.convene.state.lastError?.code === 'password_required' && !document.querySelector('#password-form').classList.contains('hidden')), 10000);
      await e.page.fill('#password-input', 'wrong');
      await e.page.click('#password-form button');
      await waitFor('wrong password refused', () => e.page.evaluate(() => window.convene.state.lastError?.code === 'wrong_password'), 5000);
      await e.page.fill('#password-input', 'hunter2');
      await e.page.click('#password-form button');
      await waitFor('eve joined', () => e.page.evaluate(() => !!window.convene.state.me), 5000);
      const eid = await myId(e);
      await a.page.evaluate((id) => [...document.querySelectorAll(`#participant-list li[data-id="${id}"] button`)].find((x) => x.textContent === 'Kick').click(), eid);
      await waitFor('eve kicked', () => e.page.evaluate(() => document.querySelector('#message-title').textContent === 'Removed'), 5000);
      await waitFor('eve gone for others', () => b.page.evaluate((id) => !window.convene.state.participants.has(id), eid), 5000);
    } finally {
      await close(e);
      await a.page.evaluate(() => { document.querySelector('#lock-password').value = ''; document.querySelector('#lock-form').requestSubmit(); });
    }
  });

  await check('bridge killed mid-call: video comes back without reload', async () => {
    if (main.length < 3) throw new Error('no call');
    const bridge = await main[0].page.evaluate(() => window.convene.state.bridgeId);
    const pid = BRIDGE_PIDS[bridge];
    if (!pid) throw new Error(`no pid for bridge ${bridge} (${JSON.stringify(BRIDGE_PIDS)})`);
    const killedAt = Date.now();
    process.kill(Number(pid), 'SIGKILL');
    log(`  killed ${bridge} (pid ${pid})`);
    await waitFor('migration', async () => {
      for (const p of main) if ((await stats(p)).migrations < 1) return false;
      return true;
    }, 20000, 50);
    const ids = await Promise.all(main.map(myId));
    await waitFor('video back everywhere', async () => {
      for (let i = 0; i < main.length; i++) {
        const f = await framesByEndpoint(main[i]);
        for (let j = 0; j < main.length; j++) if (i !== j && !((f.frames[ids[j]] || 0) > 0)) return false;
      }
      return true;
    }, 30000, 50);
    log(`  media gap after bridge kill: ${Date.now() - killedAt} ms (all three decode both others again)`);
    const now = await main[0].page.evaluate(() => window.convene.state.bridgeId);
    if (now === bridge) throw new Error('still on the killed bridge');
  });
} finally {
  for (const p of main) await close(p);
}

await check('relay-only (coturn, ephemeral credentials) still decodes', async () => {
  let pages = [];
  try {
    pages = await threeDecode('relayroom', '&relay=1');
    for (const p of pages) {
      const types = await p.page.evaluate(async () => {
        const r = await window.convene.pc.getStats();
        const out = [];
        r.forEach((s) => { if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) { const l = r.get(s.localCandidateId); out.push(l?.candidateType); } });
        return out;
      });
      if (!types.length || types.some((t) => t !== 'relay')) throw new Error(`${p.label} selected pair types ${JSON.stringify(types)}`);
      const user = await p.page.evaluate(() => window.convene.state.iceServers[0]?.username || '');
      if (!/^\d+:[0-9a-f]+$/.test(user)) throw new Error(`unexpected TURN username ${user}`);
    }
  } finally { for (const p of pages) await close(p); }
});

await check('guest cannot create a room when forbidden, can join one that exists', async () => {
  const guest1 = await open(`${JWT_BASE}board?name=guest&autojoin=1`, 'guest1');
  let host; let guest2;
  try {
    await waitFor('refusal', () => guest1.page.evaluate(() => window.convene.state.lastError?.code === 'room_creation_forbidden'), 10000);
    const now = Math.floor(Date.now() / 1000);
    const t = token({ aud: 'convene', iss: 'tests', sub: 'localhost', room: 'board', exp: now + 600, nbf: now - 5, context: { user: { name: 'Host', moderator: true } } });
    host = await open(`${JWT_BASE}board?autojoin=1&jwt=${t}`, 'host');
    await waitFor('host joined', () => host.page.evaluate(() => window.convene.state.me?.moderator === true && window.convene.state.me?.name === 'Host'), 10000);
    guest2 = await open(`${JWT_BASE}board?name=guest&autojoin=1`, 'guest2');
    await waitFor('guest joined', () => guest2.page.evaluate(() => !!window.convene.state.me), 10000);
    const bad = token({ aud: 'other', iss: 'tests', sub: 'localhost', room: 'board', exp: now + 600 });
    const forged = await open(`${JWT_BASE}board?autojoin=1&jwt=${bad}`, 'badtoken');
    await waitFor('bad token refused', () => forged.page.evaluate(() => window.convene.state.lastError?.code === 'auth_failed'), 10000);
    await close(forged);
  } finally { for (const p of [guest1, host, guest2]) if (p) await close(p); }
});

await check('signaling restart: clients rejoin and decode without reload', async () => {
  if (!process.env.SIGNALING_A_PID) throw new Error('SIGNALING_A_PID not set');
  let pages = []; let child;
  try {
    pages = await Promise.all(['frank', 'grace'].map((n) => open(`${BASE}restart?name=${n}&autojoin=1`, n)));
    await allDecode(pages);
    const ids = await Promise.all(pages.map(myId));
    const t = Date.now();
    process.kill(Number(process.env.SIGNALING_A_PID), 'SIGKILL');
    await sleep(300);
    const out = openSync(process.env.SIGNALING_A_LOG, 'a');
    child = spawn(process.env.SIGNALING_BIN, process.env.SIGNALING_A_ARGS.split('\n').filter(Boolean), { stdio: ['ignore', out, out] });
    await waitFor('rejoined', async () => {
      const now = await Promise.all(pages.map(myId));
      return now.every((id, i) => id && id !== ids[i]);
    }, 20000, 100);
    const nowIds = await Promise.all(pages.map(myId));
    await waitFor('decoding again', async () => {
      for (let i = 0; i < 2; i++) if (!(((await framesByEndpoint(pages[i])).frames[nowIds[1 - i]] || 0) > 0)) return false;
      return true;
    }, 30000, 100);
    log(`  signaling killed and restarted: media back after ${Date.now() - t} ms`);
  } finally {
    for (const p of pages) await close(p);
    if (child) child.kill('SIGKILL');
  }
});

for (const c of contexts) await c.close().catch(() => {});
for (const d of dirs) rmSync(d, { recursive: true, force: true });
log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
