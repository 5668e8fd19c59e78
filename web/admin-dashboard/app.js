// kiln admin dashboard: plain JavaScript, no libraries, no build step. Talks to the admin API
// (/api/v1/admin, docs/admin.md) with the master key from sessionStorage. Every value that comes
// from the server goes into the page through textContent, never as HTML.
'use strict';

const API = '/api/v1/admin';
const KEY_STORE = 'kiln.masterKey';
const REFRESH_MS = 30000;
const PALETTE = ['#2563eb', '#c2410c', '#16a34a', '#9333ea', '#db2777', '#0891b2', '#ca8a04',
  '#4b5563', '#dc2626', '#65a30d', '#7c3aed', '#0d9488', '#ea580c', '#1e40af'];
const STATUS_COLORS = { completed: '#16a34a', failed: '#dc2626', timeout: '#ca8a04',
  memory_limit: '#9333ea', error: '#4b5563', rejected: '#0891b2', other: '#9ca3af' };

const $ = (id) => document.getElementById(id);
let timer = null;

class AuthError extends Error {}

async function api(method, path, body) {
  const headers = { 'X-API-Key': sessionStorage.getItem(KEY_STORE) || '' };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, init);
  if (res.status === 401 || res.status === 403) throw new AuthError('The master key was refused');
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!res.ok) {
    const msg = data && (data.error || data.detail);
    throw new Error(`${method} ${path}: ${res.status}${msg ? ' ' + msg : ''}`);
  }
  return data;
}

// --- helpers -------------------------------------------------------------------------------

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) tr.appendChild(c instanceof Node ? wrapTd(c) : el('td', c));
  return tr;
}

function wrapTd(node) {
  const td = document.createElement('td');
  td.appendChild(node);
  return td;
}

function fmtNum(n) {
  return n === undefined || n === null ? '–' : Number(n).toLocaleString('en-US');
}

function fmtMs(v) {
  if (v === undefined || v === null) return '–';
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function fmtTime(v) {
  if (v === undefined || v === null || v === '') return '–';
  const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  return isNaN(d) ? String(v) : d.toLocaleString();
}

function fmtLimits(rl) {
  if (!rl) return 'none';
  const names = [['per_second', '/s'], ['per_minute', '/min'], ['hourly', '/h'],
    ['daily', '/day'], ['monthly', '/month']];
  const parts = names.filter(([k]) => rl[k]).map(([k, u]) => `${rl[k]}${u}`);
  return parts.length ? parts.join(', ') : 'none';
}

function colorFor(name, i) {
  return STATUS_COLORS[name] || PALETTE[i % PALETTE.length];
}

// --- charts --------------------------------------------------------------------------------

function niceMax(v) {
  if (v <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Draw series [{name, color, values}] sharing the time axis start + i * step (seconds).
function drawChart(canvas, start, step, points, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, w, h);

  const left = 44, right = 10, top = 28, bottom = 24;
  const pw = w - left - right, ph = h - top - bottom;
  let max = 0;
  for (const s of series) for (const v of s.values) max = Math.max(max, v);
  const ymax = niceMax(max);

  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#e5e7eb';
  g.fillStyle = '#6b7280';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(left + pw, y); g.stroke();
    const label = (ymax * i) / 4;
    g.fillText(Number.isInteger(label) ? String(label) : label.toFixed(1), left - 6, y);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  const ticks = 5;
  for (let i = 0; i <= ticks; i++) {
    const idx = Math.round(((points - 1) * i) / ticks);
    const x = left + (points > 1 ? (pw * idx) / (points - 1) : pw / 2);
    const d = new Date((start + idx * step) * 1000);
    g.textAlign = i === 0 ? 'left' : i === ticks ? 'right' : 'center';
    g.fillText(d.toTimeString().slice(0, 5), x, top + ph + 6);
  }
  g.strokeStyle = '#9ca3af';
  g.beginPath(); g.moveTo(left, top); g.lineTo(left, top + ph); g.lineTo(left + pw, top + ph);
  g.stroke();

  if (!series.length) {
    g.fillStyle = '#6b7280';
    g.textBaseline = 'middle';
    g.fillText('No executions in this window', left + pw / 2, top + ph / 2);
    return;
  }
  for (const s of series) {
    g.strokeStyle = s.color;
    g.lineWidth = 2;
    g.beginPath();
    s.values.forEach((v, i) => {
      const x = left + (points > 1 ? (pw * i) / (points - 1) : pw / 2);
      const y = top + ph - (ph * v) / ymax;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
  // Legend along the top.
  g.textAlign = 'left';
  g.textBaseline = 'middle';
  let x = left;
  for (const s of series) {
    g.fillStyle = s.color;
    g.fillRect(x, 8, 10, 10);
    g.fillStyle = '#1d2330';
    g.fillText(s.name, x + 14, 13);
    x += 24 + g.measureText(s.name).width;
  }
}

function sumArrays(arrays, n) {
  const out = new Array(n).fill(0);
  for (const a of arrays) a.forEach((v, i) => { out[i] += v; });
  return out;
}

function renderCharts(tl) {
  const n = tl.points, series = tl.series || {};
  const langs = Object.keys(series).sort();
  const byLang = langs.map((lang, i) => ({
    name: lang, color: PALETTE[i % PALETTE.length],
    values: sumArrays(Object.values(series[lang]), n),
  }));
  const statuses = {};
  for (const lang of langs) {
    for (const [st, vals] of Object.entries(series[lang])) (statuses[st] = statuses[st] || []).push(vals);
  }
  const byStatus = Object.keys(statuses).sort().map((st, i) => ({
    name: st, color: colorFor(st, i), values: sumArrays(statuses[st], n),
  }));
  drawChart($('chart-languages'), tl.start, tl.step_seconds, n, byLang);
  drawChart($('chart-statuses'), tl.start, tl.step_seconds, n, byStatus);
}

// --- panels --------------------------------------------------------------------------------

function renderStats(s) {
  $('version').textContent = `v${s.version} · up ${Math.floor(s.uptime_seconds / 3600)}h`;
  const ex = s.executions, lat = s.latency.overall;
  $('t-total').textContent = fmtNum(ex.total);
  $('t-active').textContent = `${fmtNum(ex.active)} / ${fmtNum(ex.queued)}`;
  $('t-latency').textContent = `${fmtMs(lat.p50_ms)} / ${fmtMs(lat.p95_ms)} / ${fmtMs(lat.p99_ms)} ms`;
  $('t-pool').textContent = `${fmtNum(Object.values(s.pools.by_language)
    .reduce((a, p) => a + p.hits, 0))} / ${fmtNum(s.pools.misses)}`;
  $('t-storage').textContent = `${fmtNum(s.storage.sessions)} / ${fmtNum(s.storage.files)}`;
  $('t-http').textContent = `${fmtNum(s.http.requests)} / ${fmtNum(s.http.by_class['5xx'])}`;

  const lt = $('latency-table').tBodies[0];
  lt.replaceChildren();
  for (const [lang, p] of Object.entries(s.latency.by_language).sort()) {
    lt.appendChild(row([lang, fmtNum(p.count), fmtMs(p.p50_ms), fmtMs(p.p95_ms), fmtMs(p.p99_ms)]));
  }
  if (!lt.rows.length) lt.appendChild(row(['no executions yet', '', '', '', '']));
  const w = s.timeline.latency;
  $('latency-window').textContent = `Last ${s.hours} h, all languages: p50 ${fmtMs(w.p50_ms)} ms, ` +
    `p95 ${fmtMs(w.p95_ms)} ms, p99 ${fmtMs(w.p99_ms)} ms over ${fmtNum(w.count)} runs`;

  const pt = $('pools-table').tBodies[0];
  pt.replaceChildren();
  for (const [lang, p] of Object.entries(s.pools.by_language).sort()) {
    pt.appendChild(row([lang, fmtNum(p.size), fmtNum(p.idle), fmtNum(p.hits)]));
  }
  if (!pt.rows.length) pt.appendChild(row(['no warm pools', '', '', '']));
  renderCharts(s.timeline);
}

function renderKeys(keys) {
  const tb = $('keys-table').tBodies[0];
  tb.replaceChildren();
  for (const k of keys) {
    const enabled = el('span', k.enabled ? 'yes' : 'no', 'badge ' + (k.enabled ? 'on' : 'off'));
    let action;
    if (k.source === 'managed') {
      action = el('button', 'Revoke', 'secondary');
      action.type = 'button';
      action.dataset.keyHash = k.key_hash;
      action.addEventListener('click', () => revokeKey(k));
    } else {
      action = el('span', 'read-only', 'muted');
    }
    const tr = row([k.key_prefix + '…', k.name, k.source, enabled, fmtLimits(k.rate_limits),
      fmtNum(k.usage_count), fmtTime(k.last_used_at), fmtTime(k.created_at), action]);
    tr.dataset.keyHash = k.key_hash;
    tb.appendChild(tr);
  }
  if (!tb.rows.length) tb.appendChild(row(['no keys', '', '', '', '', '', '', '', '']));
}

// --- actions -------------------------------------------------------------------------------

function handleError(e, target) {
  if (e instanceof AuthError) {
    signOut(e.message);
    return;
  }
  $(target).textContent = e.message;
}

async function loadStats() {
  try {
    const s = await api('GET', `/stats?hours=${encodeURIComponent($('hours').value)}`);
    renderStats(s);
    $('load-error').textContent = '';
  } catch (e) {
    handleError(e, 'load-error');
  }
}

async function loadKeys() {
  try {
    const data = await api('GET', '/keys');
    renderKeys(Array.isArray(data) ? data : (data && data.keys) || []);
    $('keys-error').textContent = '';
  } catch (e) {
    handleError(e, 'keys-error');
  }
}

function refresh() {
  return Promise.all([loadStats(), loadKeys()]);
}

async function createKey(ev) {
  ev.preventDefault();
  const body = { name: $('new-key-name').value.trim() };
  const limits = {};
  for (const [id, field] of [['new-key-per-minute', 'per_minute'], ['new-key-hourly', 'hourly'],
    ['new-key-daily', 'daily']]) {
    const v = parseInt($(id).value, 10);
    if (v > 0) limits[field] = v;
  }
  if (Object.keys(limits).length) body.rate_limits = limits;
  try {
    const res = await api('POST', '/keys', body);
    $('new-key-secret').textContent = res.api_key;
    $('new-key').classList.remove('hidden');
    $('create-key-form').reset();
    await loadKeys();
  } catch (e) {
    handleError(e, 'keys-error');
  }
}

async function revokeKey(k) {
  if (!window.confirm(`Revoke the key ${k.key_prefix}… (${k.name})? Clients using it stop working.`)) return;
  try {
    await api('DELETE', `/keys/${encodeURIComponent(k.key_hash)}`);
    await loadKeys();
  } catch (e) {
    handleError(e, 'keys-error');
  }
}

function show(signedIn) {
  $('login').classList.toggle('hidden', signedIn);
  $('dashboard').classList.toggle('hidden', !signedIn);
  $('session-bar').classList.toggle('hidden', !signedIn);
}

async function signIn(ev) {
  ev.preventDefault();
  sessionStorage.setItem(KEY_STORE, $('master-key').value);
  $('master-key').value = '';
  $('login-error').textContent = '';
  try {
    await api('GET', '/stats?hours=1'); // proves the key before showing anything
  } catch (e) {
    signOut(e instanceof AuthError ? 'That key is not the master key.' : e.message);
    return;
  }
  start();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  if (timer) clearInterval(timer);
  timer = null;
  $('new-key').classList.add('hidden');
  $('new-key-secret').textContent = '';
  show(false);
  $('login-error').textContent = message || '';
}

function start() {
  show(true);
  refresh();
  if (timer) clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', () => signOut(''));
  $('refresh').addEventListener('click', refresh);
  $('hours').addEventListener('change', loadStats);
  $('create-key-form').addEventListener('submit', createKey);
  $('new-key-dismiss').addEventListener('click', () => {
    $('new-key').classList.add('hidden');
    $('new-key-secret').textContent = '';
  });
  window.addEventListener('resize', () => { if (timer) loadStats(); });
  if (sessionStorage.getItem(KEY_STORE)) start(); else show(false);
});
