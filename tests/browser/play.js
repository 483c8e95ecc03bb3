#!/usr/bin/env node
// play.js - hls.js in headless Debian Chromium (driven by playwright-core) plays one HLS URL
// and reports, as ONE JSON line on stdout, whether playback advanced for the whole window
// without a stall, plus the player's latency to the live edge. Progress goes to stderr.
//
//   node tests/browser/play.js --url URL [--seconds 20] [--low-latency] [--switch-levels]
//        [--switch-mode next|current] [--startup-timeout 20] [--settle 1] [--max-latency S]
//        [--hls-config '{"maxLiveSyncPlaybackRate":1.5}'] [--screenshot out.png]
//        [--chromium /usr/bin/chromium] [--verbose]
//
// Exit status: 0 = played the whole window (see README.md for the exact criteria),
//              1 = played badly or not at all, 2 = usage error or the browser could not start.
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const SAMPLE_MS = 250;           // page-side sampling period
const POLL_MS = 250;             // node-side polling of the page while waiting
const MAX_ERRORS = 50;           // errors[] is capped at this many entries
const LAUNCH_TIMEOUT_MS = 30000; // chromium start
const HARD_MARGIN_S = 30;        // hard deadline = startup timeout + window + this

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required', '--mute-audio',
];

function usage(msg) {
  if (msg) process.stderr.write('play.js: ' + msg + '\n');
  process.stderr.write('usage: node play.js --url URL [--seconds 20] [--low-latency] [--switch-levels]\n' +
    '         [--switch-mode next|current] [--startup-timeout 20] [--settle 1] [--max-latency S]\n' +
    '         [--hls-config JSON] [--screenshot out.png] [--chromium PATH] [--verbose]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    url: null, seconds: 20, lowLatency: false, switchLevels: false, switchMode: 'next',
    startupTimeout: 20, settle: 1, maxLatency: null, hlsConfig: {}, screenshot: null, chromium: '/usr/bin/chromium',
    verbose: false,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n <= 0) usage(name + ' needs a positive number');
    return n;
  };
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    const next = () => { if (i + 1 >= argv.length) usage(a + ' needs a value'); return argv[++i]; };
    switch (a) {
      case '--url': o.url = next(); break;
      case '--seconds': o.seconds = num(a, next()); break;
      case '--low-latency': o.lowLatency = true; break;
      case '--switch-levels': o.switchLevels = true; break;
      case '--switch-mode': o.switchMode = next(); break;
      case '--startup-timeout': o.startupTimeout = num(a, next()); break;
      case '--settle': o.settle = Number(next()); if (!(o.settle >= 0)) usage('--settle needs a number >= 0'); break;
      case '--max-latency': o.maxLatency = num(a, next()); break;
      case '--hls-config': {
        const v = next();
        try { o.hlsConfig = JSON.parse(v); } catch (e) { usage('--hls-config needs a JSON object'); }
        if (!o.hlsConfig || typeof o.hlsConfig !== 'object' || Array.isArray(o.hlsConfig)) usage('--hls-config needs a JSON object');
        break;
      }
      case '--screenshot': o.screenshot = path.resolve(next()); break;
      case '--chromium': o.chromium = next(); break;
      case '--verbose': o.verbose = true; break;
      case '-h': case '--help': usage(); break;
      default: usage('unknown argument ' + a);
    }
  }
  if (!o.url) usage('--url is required');
  if (!/^https?:\/\//.test(o.url)) usage('--url must be http(s)');
  if (o.switchMode !== 'next' && o.switchMode !== 'current') usage('--switch-mode is next or current');
  return o;
}

const opts = parseArgs(process.argv);
const t0 = Date.now();
function log(...a) {
  process.stderr.write('[play.js +' + ((Date.now() - t0) / 1000).toFixed(1) + 's] ' + a.join(' ') + '\n');
}
function vlog(...a) { if (opts.verbose) log(...a); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ the page

const PAGE_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>aethex play.js</title>
<style>body{margin:0;background:#111;color:#eee;font:12px monospace}
video{width:640px;height:360px;background:#000;display:block}#st{padding:4px}</style>
</head><body><video id="v" muted autoplay playsinline></video><div id="st">loading</div>
<script src="/hls.js"></script>
<script>
'use strict';
const MAX_ERRORS = ${MAX_ERRORS};
const R = window.__r = {
  t_load: performance.now() / 1000, t_playing: null, fatal: null, errors: [], samples: [],
  waiting: [], buffer_stalled: [], nudge: [], seek_over_hole: [], level_switched: [], seeking: [],
  levels: [], level_details: null, manifest: null,
};
function now() { return performance.now() / 1000; }
function err(s) {
  if (R.errors.length < MAX_ERRORS) R.errors.push({ t: now(), msg: String(s) });
}
window.start = function (o) {
  const v = document.getElementById('v');
  if (typeof Hls === 'undefined') { R.fatal = 'hls.js did not load'; err(R.fatal); return; }
  R.hls_version = Hls.version;
  if (!Hls.isSupported()) { R.fatal = 'Hls.isSupported() is false (no MediaSource)'; err(R.fatal); return; }
  R.mse_avc = window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="avc1.64001f,mp4a.40.2"') : false;
  const hls = new Hls(Object.assign({ lowLatencyMode: !!o.lowLatency, enableWorker: true, debug: false }, o.hlsConfig));
  window.hls = hls;
  const E = Hls.Events;
  hls.on(E.ERROR, (ev, d) => {
    const t = now();
    if (d.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) R.buffer_stalled.push(t);
    else if (d.details === Hls.ErrorDetails.BUFFER_NUDGE_ON_STALL) R.nudge.push(t);
    else if (d.details === Hls.ErrorDetails.BUFFER_SEEK_OVER_HOLE) R.seek_over_hole.push(t);
    const code = d.response && d.response.code !== undefined ? ' http=' + d.response.code : '';
    const url = d.url || (d.context && d.context.url) || (d.frag && d.frag.url) || '';
    err('hls.js ' + (d.fatal ? 'FATAL ' : '') + d.type + '/' + d.details + code + (url ? ' ' + url : '') +
        (d.reason ? ' (' + d.reason + ')' : '') + (d.error && d.error.message ? ' (' + d.error.message + ')' : ''));
    if (d.fatal && !R.fatal) R.fatal = d.type + '/' + d.details;
  });
  hls.on(E.MANIFEST_PARSED, (ev, d) => {
    R.manifest = { t: now(), levels: d.levels.length };
    R.levels = hls.levels.map((l, i) => ({
      index: i, width: l.width || null, height: l.height || null, bitrate: l.bitrate || null,
      codecs: [l.videoCodec, l.audioCodec].filter(Boolean).join(','), url: l.url,
    }));
    v.play().catch((e) => err('video.play(): ' + e));
  });
  hls.on(E.LEVEL_LOADED, (ev, d) => {
    const x = d.details;
    R.level_details = {
      level: d.level, live: x.live, target_duration: x.targetduration,
      part_target: x.partTarget || null, parts: x.partList ? x.partList.length : 0,
      can_block_reload: !!x.canBlockReload, can_skip: !!x.canSkipUntil,
      segments: x.fragments ? x.fragments.length : 0,
      has_program_date_time: !!(x.fragments && x.fragments.length && x.fragments[0].programDateTime),
    };
  });
  hls.on(E.LEVEL_SWITCHED, (ev, d) => R.level_switched.push({ t: now(), level: d.level }));
  v.addEventListener('waiting', () => R.waiting.push(now()));
  v.addEventListener('seeking', () => R.seeking.push({ t: now(), to: v.currentTime }));
  v.addEventListener('playing', () => { if (R.t_playing === null) R.t_playing = now(); });
  v.addEventListener('error', () => {
    const e = v.error;
    err('video element error ' + (e ? e.code + ' ' + e.message : ''));
    if (!R.fatal) R.fatal = 'video element error';
  });
  hls.loadSource(o.url);
  hls.attachMedia(v);
  const st = document.getElementById('st');
  setInterval(() => {
    let ahead = 0;
    for (let i = 0; i < v.buffered.length; i++) {
      if (v.buffered.start(i) <= v.currentTime + 0.1 && v.buffered.end(i) > v.currentTime) {
        ahead = v.buffered.end(i) - v.currentTime;
      }
    }
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    const pd = hls.playingDate;
    const s = {
      t: now(), ct: v.currentTime, paused: v.paused, rs: v.readyState, ahead: ahead,
      lat: hls.latency, sync: hls.liveSyncPosition, target: hls.targetLatency,
      pdt_lag: pd ? (Date.now() - pd.getTime()) / 1000 : null, level: hls.currentLevel,
      dropped: q ? q.droppedVideoFrames : null, frames: q ? q.totalVideoFrames : null,
      w: v.videoWidth, h: v.videoHeight, rate: v.playbackRate,
    };
    R.samples.push(s);
    st.textContent = 't=' + s.ct.toFixed(2) + ' latency=' + (s.lat || 0).toFixed(2) + ' level=' + s.level +
      ' ' + s.w + 'x' + s.h + ' buffer=' + ahead.toFixed(2) + ' waiting=' + R.waiting.length;
  }, ${SAMPLE_MS});
};
</script></body></html>
`;

function hlsJsPath() {
  return require.resolve('hls.js/dist/hls.min.js', { paths: [__dirname] });
}

function startPageServer() {
  const hlsjs = fs.readFileSync(hlsJsPath());
  const srv = http.createServer((req, res) => {
    const u = req.url.split('?')[0];
    if (u === '/' || u === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE_HTML);
    } else if (u === '/hls.js') {
      res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' });
      res.end(hlsjs);
    } else if (u === '/favicon.ico') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve(srv));
  });
}

// ------------------------------------------------------------------ analysis

function median(a) { return quantile(a, 50); }
function quantile(a, q) {
  const v = a.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((x, y) => x - y);
  if (!v.length) return null;
  const k = (v.length - 1) * q / 100;
  const f = Math.floor(k);
  const c = Math.min(f + 1, v.length - 1);
  return v[f] + (v[c] - v[f]) * (k - f);
}
function r3(x) { return typeof x === 'number' && Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null; }
const inWin = (t, a, b) => t >= a && t <= b;

function analyse(R, win0, win1, requested) {
  const samples = R.samples.filter((s) => inWin(s.t, win0, win1));
  const before = (t) => t < win0;
  const stalls = {
    waiting: R.waiting.filter((t) => inWin(t, win0, win1)).length,
    buffer_stalled_error: R.buffer_stalled.filter((t) => inWin(t, win0, win1)).length,
    frozen_intervals: 0, frozen_s: 0,
    nudge_on_stall: R.nudge.filter((t) => inWin(t, win0, win1)).length,
    seek_over_hole: R.seek_over_hole.filter((t) => inWin(t, win0, win1)).length,
  };
  for (let i = 1; i < samples.length; i++) {
    if (!(samples[i].ct > samples[i - 1].ct)) {
      stalls.frozen_intervals++;
      stalls.frozen_s += samples[i].t - samples[i - 1].t;
    }
  }
  stalls.frozen_s = r3(stalls.frozen_s);
  // when each stall-ish event happened, relative to the window start (for debugging)
  const stall_log = [];
  for (const t of R.waiting) if (inWin(t, win0, win1)) stall_log.push({ at_s: r3(t - win0), what: 'waiting' });
  for (const t of R.buffer_stalled) if (inWin(t, win0, win1)) stall_log.push({ at_s: r3(t - win0), what: 'buffer_stalled_error' });
  for (const x of R.seeking) if (inWin(x.t, win0, win1)) stall_log.push({ at_s: r3(x.t - win0), what: 'seeking to ' + r3(x.to) });
  for (let i = 1; i < samples.length; i++) {
    if (!(samples[i].ct > samples[i - 1].ct)) stall_log.push({ at_s: r3(samples[i].t - win0), what: 'frozen at ' + r3(samples[i].ct) });
  }
  stall_log.sort((a, b) => a.at_s - b.at_s);
  stalls.total = stalls.waiting + stalls.buffer_stalled_error + stalls.frozen_intervals;
  const startup_stalls = {
    waiting: R.waiting.filter(before).length,
    buffer_stalled_error: R.buffer_stalled.filter(before).length,
  };
  const first = samples[0];
  const last = samples[samples.length - 1];
  const lat = samples.map((s) => s.lat).filter((x) => x > 0);
  const gap = samples.filter((s) => typeof s.sync === 'number').map((s) => s.sync - s.ct);
  const pdt = samples.map((s) => s.pdt_lag).filter((x) => x !== null);
  const switches = R.level_switched.filter((x) => inWin(x.t, win0, win1));
  const levelsReached = requested.filter((rq) => rq.level >= 0).map((rq) => ({
    level: rq.level, requested_at_s: r3(rq.t - win0),
    reached: R.level_switched.some((x) => x.t >= rq.t && x.level === rq.level),
  }));
  return {
    samples: samples.length,
    window_s: r3(last && first ? last.t - first.t : 0),
    currentTime_start: first ? r3(first.ct) : null,
    currentTime_end: last ? r3(last.ct) : null,
    played_s: first && last ? r3(last.ct - first.ct) : 0,
    stalls, startup_stalls, stall_log: stall_log.slice(0, 50), seeks: R.seeking.filter((x) => inWin(x.t, win0, win1)).length,
    latency_s: r3(median(lat)),
    latency: {
      hls_latency_med: r3(median(lat)), hls_latency_p90: r3(quantile(lat, 90)),
      hls_latency_max: r3(lat.length ? Math.max(...lat) : null), hls_latency_last: r3(lat[lat.length - 1]),
      live_sync_gap_med: r3(median(gap)), target_latency: last ? r3(last.target) : null,
      program_date_time_lag_med: r3(median(pdt)),
    },
    buffer_ahead_med_s: r3(median(samples.map((s) => s.ahead))),
    dropped_frames: last && first && last.dropped !== null ? last.dropped - first.dropped : null,
    decoded_frames: last && first && last.frames !== null ? last.frames - first.frames : null,
    video: last ? { width: last.w, height: last.h, playback_rate: last.rate } : null,
    level_switches: switches.length,
    level_switch_log: switches.map((x) => ({ at_s: r3(x.t - win0), level: x.level })),
    levels_requested: levelsReached,
  };
}

// ------------------------------------------------------------------ main

let ctx = null;
let pageServer = null;
let userDataDir = null;
let finished = false;

async function cleanup() {
  const c = ctx;
  ctx = null;
  if (c) await Promise.race([c.close().catch(() => {}), sleep(5000)]);
  if (pageServer) { pageServer.close(); pageServer = null; }
  if (userDataDir) {
    try { fs.rmSync(userDataDir, { recursive: true, force: true }); } catch (e) { /* ignore */ }
    userDataDir = null;
  }
}

async function finish(report, code) {
  if (finished) return;
  finished = true;
  await cleanup();
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(code);
}

function failReport(msg, extra) {
  return Object.assign({ ok: false, url: opts.url, seconds: opts.seconds, played_s: 0,
    stalls: null, errors: [msg], latency_s: null, levels: [], level_switches: 0, failures: [msg] }, extra || {});
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => finish(failReport('killed by ' + sig), 1));
}

async function main() {
  const hard = (opts.startupTimeout + opts.settle + opts.seconds + HARD_MARGIN_S) * 1000;
  setTimeout(() => finish(failReport('harness hard deadline of ' + hard / 1000 + ' s passed'), 1), hard).unref();

  if (!fs.existsSync(opts.chromium)) {
    return finish(failReport('chromium not found at ' + opts.chromium +
      ' (scripts/install-deps.sh installs Debian chromium)'), 2);
  }
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
    hlsJsPath();
  } catch (e) {
    return finish(failReport('node packages missing (' + e.message.split('\n')[0] +
      '): run scripts/install-deps.sh or `npm ci` in tests/browser'), 2);
  }
  pageServer = await startPageServer();
  const pageUrl = 'http://127.0.0.1:' + pageServer.address().port + '/';
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aethex-chromium-'));
  try {
    ctx = await chromium.launchPersistentContext(userDataDir, {
      executablePath: opts.chromium, headless: true, args: CHROMIUM_ARGS,
      timeout: LAUNCH_TIMEOUT_MS, viewport: { width: 660, height: 400 },
    });
  } catch (e) {
    return finish(failReport('chromium did not start: ' + e.message.split('\n')[0]), 2);
  }
  const browserVersion = ctx.browser() ? ctx.browser().version() : null;
  const page = ctx.pages()[0] || await ctx.newPage();
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      if (consoleErrors.length < MAX_ERRORS) consoleErrors.push('console.' + m.type() + ': ' + m.text());
    }
    vlog('console.' + m.type() + ':', m.text());
  });
  page.on('pageerror', (e) => { if (consoleErrors.length < MAX_ERRORS) consoleErrors.push('pageerror: ' + e.message); });
  page.on('crash', () => consoleErrors.push('page crashed'));
  await page.goto(pageUrl, { timeout: 15000 });
  await page.evaluate((o) => window.start(o), { url: opts.url, lowLatency: opts.lowLatency, hlsConfig: opts.hlsConfig });
  log('chromium ' + browserVersion + ' playing ' + opts.url + (opts.lowLatency ? ' (lowLatencyMode)' : ''));

  // 1. wait until playback has started: 'playing' fired and currentTime moved
  const startDeadline = Date.now() + opts.startupTimeout * 1000;
  let st = null;
  for (;;) {
    st = await page.evaluate(() => {
      const R = window.__r;
      const s = R.samples[R.samples.length - 1];
      return { fatal: R.fatal, playing: R.t_playing, ct: s ? s.ct : 0, now: performance.now() / 1000, t_load: R.t_load };
    });
    if (st.fatal || (st.playing !== null && st.ct > 0) || Date.now() > startDeadline) break;
    await sleep(POLL_MS);
  }
  const started = !st.fatal && st.playing !== null && st.ct > 0;
  const startup_s = started ? r3(st.playing - st.t_load) : null;
  if (started) log('playing after ' + startup_s + ' s; settling ' + opts.settle + ' s, then measuring ' + opts.seconds + ' s');
  else log('did not start: ' + (st.fatal || 'no playback within ' + opts.startupTimeout + ' s'));

  // 2. the measurement window (with forced level switches when asked); it opens --settle
  //    seconds after playback started (the player's initial live-edge seek and first part
  //    fetches belong to startup, reported as startup_stalls)
  if (started && opts.settle > 0) {
    await sleep(opts.settle * 1000);
    st.now = await page.evaluate(() => performance.now() / 1000);
  }
  const win0 = st.now;
  const requested = [];
  let plan = [];
  if (started) {
    if (opts.switchLevels) {
      const levels = await page.evaluate(() => window.__r.levels);
      if (levels.length >= 2) {
        const byRate = levels.slice().sort((a, b) => (a.bitrate || 0) - (b.bitrate || 0)).map((l) => l.index);
        const lo = byRate[0];
        const hi = byRate[byRate.length - 1];
        // up, down, up again, then back to automatic selection
        plan = [[0.15, hi], [0.40, lo], [0.65, hi], [0.85, -1]];
      }
    }
    const winEnd = Date.now() + opts.seconds * 1000;
    let lastLog = 0;
    while (Date.now() < winEnd) {
      const el = (opts.seconds * 1000 - (winEnd - Date.now())) / 1000;
      while (plan.length && el >= plan[0][0] * opts.seconds) {
        const lvl = plan.shift()[1];
        const t = await page.evaluate(([mode, l]) => {
          if (mode === 'current') window.hls.currentLevel = l; else window.hls.nextLevel = l;
          return performance.now() / 1000;
        }, [opts.switchMode, lvl]);
        requested.push({ t, level: lvl });
        log('forced ' + (opts.switchMode === 'current' ? 'hls.currentLevel' : 'hls.nextLevel') + ' = ' + lvl);
      }
      const p = await page.evaluate(() => {
        const R = window.__r;
        const s = R.samples[R.samples.length - 1];
        return { fatal: R.fatal, s };
      });
      if (p.fatal) { log('fatal: ' + p.fatal); break; }
      if (Date.now() - lastLog >= 5000) {
        lastLog = Date.now();
        if (p.s) log('t=' + p.s.ct.toFixed(2) + ' latency=' + (p.s.lat || 0).toFixed(2) + ' buffer=' + p.s.ahead.toFixed(2) + ' level=' + p.s.level);
      }
      await sleep(POLL_MS);
    }
  }
  if (opts.screenshot) {
    try { await page.screenshot({ path: opts.screenshot }); } catch (e) { consoleErrors.push('screenshot: ' + e.message); }
  }
  const R = await page.evaluate(() => window.__r);
  const win1 = R.samples.length ? R.samples[R.samples.length - 1].t : win0;
  const a = analyse(R, win0, win1, requested);

  // 3. verdict
  const failures = [];
  if (!started) failures.push(R.fatal ? 'fatal before playback: ' + R.fatal : 'playback did not start within ' + opts.startupTimeout + ' s');
  if (started) {
    if (R.fatal) failures.push('fatal error during the window: ' + R.fatal);
    if (a.stalls.total > 0) failures.push('stalls in the window: ' + JSON.stringify(a.stalls));
    if (a.played_s < 0.8 * opts.seconds) failures.push('currentTime advanced ' + a.played_s + ' s in a ' + opts.seconds + ' s window');
    if (opts.maxLatency !== null && !(a.latency_s !== null && a.latency_s <= opts.maxLatency)) {
      failures.push('median latency ' + a.latency_s + ' s above --max-latency ' + opts.maxLatency);
    }
    if (opts.switchLevels) {
      if (R.levels.length < 2) failures.push('--switch-levels: the stream has ' + R.levels.length + ' level(s)');
      for (const l of a.levels_requested) if (!l.reached) failures.push('--switch-levels: level ' + l.level + ' never became current');
    }
  }
  const errors = R.errors.map((e) => e.msg).concat(consoleErrors).slice(0, MAX_ERRORS);
  const report = {
    ok: failures.length === 0,
    url: opts.url, seconds: opts.seconds, low_latency: opts.lowLatency, hls_config: opts.hlsConfig,
    startup_s, played_s: a.played_s, window_s: a.window_s,
    currentTime_start: a.currentTime_start, currentTime_end: a.currentTime_end,
    stalls: a.stalls, startup_stalls: a.startup_stalls, stall_log: a.stall_log, seeks: a.seeks, errors,
    latency_s: a.latency_s, latency: a.latency,
    levels: R.levels.map((l) => ({ index: l.index, width: l.width, height: l.height, bitrate: l.bitrate, codecs: l.codecs })),
    level_switches: a.level_switches, level_switch_log: a.level_switch_log, levels_requested: a.levels_requested,
    playlist: R.level_details, buffer_ahead_med_s: a.buffer_ahead_med_s,
    dropped_frames: a.dropped_frames, decoded_frames: a.decoded_frames, video: a.video,
    samples: a.samples, hls_js: R.hls_version || null, browser: browserVersion,
    screenshot: opts.screenshot, failures,
  };
  log(report.ok ? 'OK' : 'FAILED: ' + failures.join('; '));
  return finish(report, report.ok ? 0 : 1);
}

main().catch((e) => finish(failReport('harness error: ' + (e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e)), 2));
