// Renders openapi.json (fetched from the same origin) as a list of operations and schemas.
// Vanilla JS, no external resources: the page's CSP allows only 'self'.
(function () {
  'use strict';
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function refName(s) { return s && s.$ref ? s.$ref.split('/').pop() : null; }
  function typeOf(s) {
    if (!s) return '';
    if (s.$ref) return refName(s);
    if (s.type === 'array') return typeOf(s.items) + '[]';
    return (s.type || 'any') + (s.enum ? ' (' + s.enum.join('|') + ')' : '');
  }
  function render(doc) {
    document.getElementById('title').textContent = doc.info.title + ' ' + doc.info.version;
    document.getElementById('desc').textContent = doc.info.description || '';
    var ops = document.getElementById('ops');
    Object.keys(doc.paths).forEach(function (path) {
      var item = doc.paths[path];
      Object.keys(item).forEach(function (method) {
        var op = item[method], box = el('details', 'op'), sum = el('summary');
        sum.appendChild(el('span', 'm ' + method, method.toUpperCase()));
        sum.appendChild(el('span', 'path', path));
        sum.appendChild(el('span', '', ' — ' + (op.summary || '')));
        box.appendChild(sum);
        if (op.parameters && op.parameters.length) {
          var t = el('table');
          t.appendChild(el('tr')).innerHTML = '<th>parameter</th><th>in</th><th>type</th><th>notes</th>';
          op.parameters.forEach(function (p) {
            var tr = el('tr');
            [p.name + (p.required ? ' *' : ''), p.in, typeOf(p.schema), p.description || '']
              .forEach(function (c) { tr.appendChild(el('td', '', c)); });
            t.appendChild(tr);
          });
          box.appendChild(t);
        }
        if (op.requestBody) {
          Object.keys(op.requestBody.content).forEach(function (ct) {
            box.appendChild(el('div', '', 'Body (' + ct + '): ' + typeOf(op.requestBody.content[ct].schema)));
          });
        }
        var rt = el('table');
        rt.appendChild(el('tr')).innerHTML = '<th>status</th><th>answer</th>';
        Object.keys(op.responses).forEach(function (code) {
          var r = op.responses[code];
          if (r.$ref) r = doc.components.responses[refName(r)];
          var tr = el('tr');
          tr.appendChild(el('td', '', code));
          tr.appendChild(el('td', '', r.description || ''));
          rt.appendChild(tr);
        });
        box.appendChild(rt);
        ops.appendChild(box);
      });
    });
    var schemas = document.getElementById('schemas');
    Object.keys(doc.components.schemas).forEach(function (name) {
      var box = el('details', 'op');
      box.appendChild(el('summary', '', name));
      box.appendChild(el('pre', '', JSON.stringify(doc.components.schemas[name], null, 2)));
      schemas.appendChild(box);
    });
  }
  fetch('openapi.json').then(function (r) { return r.json(); }).then(render, function (e) {
    document.getElementById('desc').textContent = 'Cannot load openapi.json: ' + e;
  });
})();
