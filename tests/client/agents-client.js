// Runs the real @librechat/agents `execute_code` tool (dist/cjs/tools/CodeExecutor.cjs) against a
// running kiln: code execution, an uploaded file mounted through the client's own file refs, and
// a generated PNG downloaded back. Usage: node agents-client.js <node_modules dir> <version>
// env: KILN_URL, KILN_API_KEY. Exit 0 when every check passed.
const path = require('path');
const assert = require('assert');

const modules = process.argv[2];
const version = process.argv[3];
const base = process.env.KILN_URL;
const key = process.env.KILN_API_KEY;
const gen1 = version.startsWith('3.1.');
process.env.LIBRECHAT_CODE_BASEURL = base; // 3.1.x computes the endpoint at module load
const dist = path.join(modules, '@librechat/agents/dist/cjs');
if (+process.versions.node.split('.')[0] < 22) {
  // node-fetch@3 is ESM-only and the bundle's __toESM wraps it wrongly on Node 20
  // (research/api.md §2.6): hand it the global fetch.
  try {
    const nf = require.resolve('node-fetch', { paths: [dist] });
    const f = (...a) => fetch(...a);
    f.default = f;
    require.cache[nf] = { id: nf, filename: nf, loaded: true, exports: f };
  } catch (e) { /* this version does not use node-fetch */ }
}
const { createCodeExecutionTool } = require(path.join(dist, 'tools/CodeExecutor.cjs'));

async function upload(name, body) {
  const fd = new FormData();
  fd.append('file', new Blob([body], { type: 'text/csv' }), name);
  const r = await fetch(`${base}/upload`, {
    method: 'POST', body: fd,
    headers: { 'X-API-Key': key, 'User-Id': 'agents-user', 'User-Agent': 'LibreChat/1.0' },
  });
  const t = await r.text();
  assert.strictEqual(r.status, 200, t);
  const j = JSON.parse(t);
  assert.strictEqual(j.message, 'success');
  return { session_id: j.session_id, id: j.files[0].fileId, name: j.files[0].filename };
}

function text(msg) {
  return typeof msg.content === 'string' ? msg.content : JSON.stringify(msg.content);
}

(async () => {
  const f = await upload('data.csv', 'x,y\n1,2\n3,4\n');
  const code = [
    'import pandas as pd, matplotlib', "matplotlib.use('Agg')", 'import matplotlib.pyplot as plt',
    "df = pd.read_csv('data.csv')", "print('sum', int(df.y.sum()))",
    "plt.plot(df.x, df.y); plt.savefig('plot.png')",
  ].join('\n');
  let tool, call;
  if (gen1) {
    // classic LibreChat: params {user_id, files, LIBRECHAT_CODE_API_KEY}
    tool = createCodeExecutionTool({ user_id: 'agents-user', LIBRECHAT_CODE_API_KEY: key,
      files: [{ id: f.id, session_id: f.session_id, name: f.name }] });
    call = { id: 'c1', name: 'execute_code', type: 'tool_call', args: { lang: 'py', code } };
  } else {
    tool = createCodeExecutionTool({ baseUrl: base, authHeaders: { 'X-API-Key': key },
      user_id: 'agents-user' });
    call = { id: 'c1', name: 'execute_code', type: 'tool_call', args: { lang: 'py', code },
      _injected_files: [{ id: f.id, resource_id: f.id, name: f.name,
        storage_session_id: f.session_id, kind: 'user' }] };
  }
  const msg = await tool.invoke(call);
  const content = text(msg);
  console.log(`[${version}] content:`, content.slice(0, 400));
  console.log(`[${version}] artifact:`, JSON.stringify(msg.artifact));
  assert.ok(content.includes('sum 6'), 'stdout of the run in the tool output');
  const art = msg.artifact || {};
  assert.match(art.session_id || '', /^[A-Za-z0-9_-]{21}$/);
  const png = (art.files || []).find((x) => x.name === 'plot.png');
  assert.ok(png, 'plot.png among the artifact files');
  const sid = png.storage_session_id || art.session_id;
  const r = await fetch(`${base}/download/${sid}/${png.id}`, { headers: { 'X-API-Key': key } });
  assert.strictEqual(r.status, 200);
  const bytes = Buffer.from(await r.arrayBuffer());
  assert.ok(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])));
  console.log(`[${version}] OK: ${bytes.length}-byte PNG downloaded`);
})().catch((e) => { console.error(`[${version}] FAILED:`, e); process.exit(1); });
