// Drive the kiln admin dashboard in Debian's headless chromium (playwright-core, no browser
// download) and check what an operator sees.
//
//   node tests/browser/dashboard.mjs <dashboard URL> [screenshot.png]
//   env KILN_MASTER_KEY  the master key (required)
//       CHROMIUM         browser binary (default /usr/bin/chromium)
//
// Checks: a wrong key is refused; the master key signs in; both charts are drawn (non-blank
// canvases); tiles and the key list are filled from the API; a key is created through the UI
// (its secret shown once) and revoked through the UI, both confirmed against the API itself;
// environment keys offer no revoke; no JavaScript errors; and a full-page screenshot whose
// pixels are not blank. Prints one JSON line of results; exits non-zero on the first failure.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';

const url = process.argv[2];
const shotPath = process.argv[3] || join(tmpdir(), `kiln-dashboard-${process.pid}.png`);
const masterKey = process.env.KILN_MASTER_KEY;
if (!url || !masterKey) {
  console.error('usage: KILN_MASTER_KEY=... node dashboard.mjs <dashboard URL> [screenshot.png]');
  process.exit(2);
}
const origin = new URL(url).origin;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function adminApi(method, path) {
  const res = await fetch(`${origin}/api/v1/admin${path}`, {
    method, headers: { 'X-API-Key': masterKey },
  });
  check(res.ok, `${method} ${path} answered ${res.status}`);
  return res.json();
}

// Decode an 8-bit, non-interlaced RGB/RGBA PNG (what chromium writes) and return
// {width, height, distinct colours, share of the most common colour}.
function pngStats(buf) {
  check(buf.subarray(1, 4).toString() === 'PNG', 'screenshot is a PNG');
  let pos = 8, width = 0, height = 0, ctype = 0, depth = 0, interlace = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), type = buf.toString('ascii', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      depth = data[8]; ctype = data[9]; interlace = data[12];
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  check(depth === 8 && (ctype === 2 || ctype === 6) && interlace === 0,
    `PNG format supported (depth ${depth}, colour type ${ctype})`);
  const bpp = ctype === 6 ? 4 : 3, stride = width * bpp;
  const raw = inflateSync(Buffer.concat(idat));
  const out = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[dst + x - bpp] : 0;
      const b = y > 0 ? out[dst - stride + x] : 0;
      const c = x >= bpp && y > 0 ? out[dst - stride + x - bpp] : 0;
      let v = raw[src + x];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[dst + x] = v & 0xff;
    }
  }
  const counts = new Map();
  for (let i = 0; i < out.length; i += bpp) {
    const k = (out[i] << 16) | (out[i + 1] << 8) | out[i + 2];
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  const top = Math.max(...counts.values());
  return { width, height, colours: counts.size, dominant: top / (width * height) };
}

// Pixels of a canvas: how many are not white, and how many distinct colours.
async function canvasStats(page, id) {
  return page.evaluate((cid) => {
    const c = document.getElementById(cid);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    let ink = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) ink++;
      seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return { ink: ink / (d.length / 4), colours: seen.size, w: c.width, h: c.height };
  }, id);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'kiln-chromium-'));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: false, // the flag below selects chromium's own (new) headless mode
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  timeout: 60000,
});
const results = {};
let failed = null;
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(15000);
  const jsErrors = [];
  page.on('pageerror', (e) => jsErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') jsErrors.push(m.text()); });

  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#login-form', { state: 'visible' });

  // A wrong key is refused and nothing of the dashboard shows.
  await page.fill('#master-key', 'not-the-master-key');
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
  check(await page.isHidden('#dashboard'), 'dashboard hidden after a wrong key');
  results.wrong_key = await page.textContent('#login-error');
  // The refusals of the wrong key (kiln: 401 for a wrong key, 403 for a valid non-master one)
  // show up as console errors; they are expected here, and only they are dropped (a CSP
  // violation at load time must still fail the run).
  for (let i = jsErrors.length - 1; i >= 0; i--) {
    if (/status of 40[13]/.test(jsErrors[i])) jsErrors.splice(i, 1);
  }

  // The master key signs in.
  await page.fill('#master-key', masterKey);
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => !document.getElementById('dashboard').classList
    .contains('hidden') || document.getElementById('login-error').textContent.length > 0);
  check(await page.isVisible('#dashboard'),
    `the master key signs in (${await page.textContent('#login-error')})`);
  await page.waitForSelector('#keys-table tbody tr[data-key-hash]');
  await page.waitForFunction(() => document.getElementById('t-total').textContent !== '–');
  const stats = await adminApi('GET', '/stats?hours=24');
  results.tile_total = await page.textContent('#t-total');
  check(results.tile_total === stats.executions.total.toLocaleString('en-US'),
    `executions tile shows ${stats.executions.total} (got ${results.tile_total})`);
  results.latency_rows = await page.locator('#latency-table tbody tr').count();
  check(results.latency_rows === Object.keys(stats.latency.by_language).length,
    'one latency row per language');
  results.pool_rows = await page.locator('#pools-table tbody tr').count();

  // Both charts are drawn: a fair share of ink and several colours (grid, axes, lines, legend).
  for (const id of ['chart-languages', 'chart-statuses']) {
    const s = await canvasStats(page, id);
    results[id] = s;
    check(s.w > 100 && s.h > 100, `${id} has a size`);
    check(s.ink > 0.01 && s.colours >= 8, `${id} is drawn (${JSON.stringify(s)})`);
  }

  // The key list matches the API; environment keys are read-only.
  const keys = await adminApi('GET', '/keys');
  results.keys_listed = await page.locator('#keys-table tbody tr[data-key-hash]').count();
  check(results.keys_listed === keys.length, `${keys.length} keys listed`);
  const envKey = keys.find((k) => k.source === 'environment');
  if (envKey) {
    const envRow = page.locator(`#keys-table tbody tr[data-key-hash="${envKey.key_hash}"]`);
    check((await envRow.locator('button').count()) === 0, 'no revoke on an environment key');
  }

  // Create a key through the UI: the secret is shown once and the API lists it.
  const name = `browser-test-${process.pid}`;
  await page.fill('#new-key-name', name);
  await page.fill('#new-key-per-minute', '30');
  await page.click('#create-key-form button[type=submit]');
  await page.waitForSelector('#new-key', { state: 'visible' });
  const secret = (await page.textContent('#new-key-secret')).trim();
  check(secret.length >= 16, 'the new secret is shown');
  const created = (await adminApi('GET', '/keys')).find((k) => k.name === name);
  check(created, 'the created key is listed by the API');
  check(created.rate_limits && created.rate_limits.per_minute === 30, 'its rate limit was sent');
  check(secret.startsWith(created.key_prefix), 'the shown secret belongs to the created key');
  const row = page.locator(`#keys-table tbody tr[data-key-hash="${created.key_hash}"]`);
  await row.waitFor();
  check((await row.textContent()).includes(name), 'the new key appears in the list');
  results.created = created.key_prefix;

  // Revoke it through the UI (accepting the confirmation); the API no longer lists it.
  page.once('dialog', (d) => d.accept());
  await row.locator('button').click();
  await row.waitFor({ state: 'detached' });
  check(!(await adminApi('GET', '/keys')).some((k) => k.key_hash === created.key_hash),
    'the revoked key is gone from the API');
  results.revoked = true;
  await page.click('#new-key-dismiss');

  // A full-page screenshot whose pixels are not blank.
  await page.screenshot({ path: shotPath, fullPage: true });
  const png = pngStats(readFileSync(shotPath));
  results.screenshot = { path: shotPath, ...png };
  check(png.width >= 1000 && png.height >= 600, 'screenshot has the page size');
  check(png.colours >= 50, `screenshot has many colours (${png.colours})`);
  check(png.dominant < 0.95, `screenshot is not one flat colour (${png.dominant.toFixed(3)})`);

  // Signing out forgets the key.
  await page.click('#logout');
  await page.waitForSelector('#login-form', { state: 'visible' });
  check((await page.evaluate(() => sessionStorage.getItem('kiln.masterKey'))) === null,
    'sign-out clears the stored key');

  check(jsErrors.length === 0, `no JavaScript errors (${jsErrors.join(' | ')})`);
} catch (e) {
  failed = e;
} finally {
  await ctx.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify({ ok: !failed, error: failed ? String(failed.message) : undefined,
  ...results }));
process.exit(failed ? 1 : 0);
