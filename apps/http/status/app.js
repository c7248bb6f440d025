// The status page: fetches /status/data (with the operator token when one was given: #token=...
// in the address, or the form) and refetches whenever /status/events reports a job event.
// Everything from the server is inserted as text, never as HTML.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  let token = '';
  const fromHash = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    token = decodeURIComponent(fromHash[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child == null ? '' : String(child)));
    return node;
  }
  function rows(tbody, items, render, columns, emptyText) {
    tbody.replaceChildren(...(items.length ? items.map(render) : [el('tr', {}, el('td', { class: 'empty', colspan: String(columns) }, emptyText))]));
  }
  function ago(iso) {
    if (!iso) return '–';
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
  }
  function seconds(a, b) {
    if (!a || !b) return '–';
    return `${((Date.parse(b) - Date.parse(a)) / 1000).toFixed(1)} s`;
  }
  function prompts(job) {
    return job.prompts ? job.prompts.join(' → ') : 'hidden (private server)';
  }
  function progressBar(job) {
    const f = job.progress ? Math.max(0, Math.min(1, job.progress.fraction)) : 0;
    const bar = el('span', { class: 'bar', title: job.progress ? job.progress.stage : 'starting' }, el('span', { style: `width:${(f * 100).toFixed(0)}%` }));
    return el('span', {}, bar, ` ${(f * 100).toFixed(0)}%${job.progress ? ` ${job.progress.stage}` : ''}`);
  }
  const jobRow = (job, cells) => el('tr', { dataset: { jobId: String(job.id), status: job.status } }, ...cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : el('td', {}, c))));

  function chart(hour) {
    const svg = $('chart');
    const ns = 'http://www.w3.org/2000/svg';
    const s = (tag, attrs, text) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
      if (text !== undefined) n.textContent = text;
      return n;
    };
    const W = 520, H = 160, left = 34, right = 34, top = 10, bottom = 20;
    const n = hour.length || 1;
    const maxDone = Math.max(1, ...hour.map((b) => b.finished + b.failed));
    const maxWait = Math.max(1, ...hour.map((b) => b.meanWaitSeconds || 0));
    const bw = (W - left - right) / n;
    const y = (v, max) => top + (H - top - bottom) * (1 - v / max);
    const parts = [s('line', { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, stroke: '#e5e7eb' })];
    hour.forEach((b, i) => {
      const x = left + i * bw + 2;
      parts.push(s('rect', { x, y: y(b.finished, maxDone), width: bw - 4, height: H - bottom - y(b.finished, maxDone), fill: '#4f46e5' }, undefined));
      if (b.failed) parts.push(s('rect', { x, y: y(b.finished + b.failed, maxDone), width: bw - 4, height: y(b.finished, maxDone) - y(b.finished + b.failed, maxDone), fill: '#dc2626' }));
    });
    const points = hour.map((b, i) => (b.meanWaitSeconds == null ? null : `${left + (i + 0.5) * bw},${y(b.meanWaitSeconds, maxWait)}`)).filter(Boolean);
    if (points.length > 1) parts.push(s('polyline', { points: points.join(' '), fill: 'none', stroke: '#d97706', 'stroke-width': 2 }));
    for (const p of points) { const [cx, cy] = p.split(','); parts.push(s('circle', { cx, cy, r: 2.5, fill: '#d97706' })); }
    parts.push(s('text', { x: 2, y: top + 8 }, String(maxDone)), s('text', { x: 2, y: H - bottom }, '0'));
    parts.push(s('text', { x: W - right + 4, y: top + 8 }, `${maxWait.toFixed(0)} s`));
    parts.push(s('text', { x: left, y: H - 4 }, '−60 min'), s('text', { x: W - right - 20, y: H - 4 }, 'now'));
    svg.replaceChildren(...parts);
  }

  function render(data) {
    $('view').textContent = data.view === 'full' ? 'full view (operator)' : 'public view';
    $('updated').textContent = new Date(data.at).toLocaleTimeString();
    rows($('queue'), data.queue, (q) => el('tr', { dataset: { model: q.model } }, el('td', {}, q.model), el('td', { class: 'num' }, q.queued), el('td', { class: 'num' }, q.running)), 3, 'nothing queued');
    rows(
      $('workers'),
      data.workers,
      (w) =>
        el(
          'tr',
          { dataset: { workerId: w.name } },
          // The public view names a worker "worker N" and says GPU or CPU only; the full view adds its host and device.
          el('td', {}, w.name, ...(w.host ? [el('div', { class: 'muted' }, w.host)] : [])),
          el('td', {}, `${w.device ? `${w.device} (` : ''}${w.executionProvider}, ${w.slots} slot${w.slots === 1 ? '' : 's'}${w.device ? ')' : ''}`),
          el('td', { class: w.online ? 'live' : 'offline' }, w.online ? (w.jobs.length ? 'busy' : 'idle') : 'offline'),
          el('td', {}, w.jobs.length ? w.jobs.map((id) => `#${id}`).join(', ') : '–'),
          el('td', { class: 'num' }, ago(w.heartbeatAt)),
        ),
      5,
      'no workers seen in the last hour',
    );
    rows($('running'), data.running, (j) => jobRow(j, [`#${j.id}`, j.kind, j.model, j.workerId || '–', progressBar(j), el('td', { class: 'prompt' }, prompts(j))]), 6, 'nothing rendering');
    rows($('queued'), data.queued, (j) => jobRow(j, [el('td', { class: 'num' }, j.position), `#${j.id}`, j.kind, j.model, el('td', { class: 'num' }, ago(j.createdAt)), el('td', { class: 'prompt' }, prompts(j))]), 6, 'nobody waiting');
    rows($('recent'), data.recent, (j) => jobRow(j, [`#${j.id}`, j.kind, j.status, el('td', { class: 'num' }, seconds(j.startedAt, j.finishedAt)), el('td', { class: 'prompt' }, prompts(j))]), 5, 'nothing finished yet');
    rows($('failures'), data.failures, (j) => jobRow(j, [`#${j.id}`, j.kind, j.status, j.cause || '–', el('td', { class: 'err' }, j.error == null ? (j.cause ? 'hidden (private server)' : '–') : j.error)]), 5, 'no failures in the last day');
    chart(data.hour);
  }

  let inFlight = false;
  let again = false;
  async function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const res = await fetch('/status/data', { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' });
      const body = await res.json();
      if (!res.ok) {
        $('error').hidden = false;
        $('error').textContent = body.error || `HTTP ${res.status}`;
        if (res.status === 401) { token = ''; }
        return;
      }
      $('error').hidden = true;
      render(body);
    } catch (e) {
      $('error').hidden = false;
      $('error').textContent = `Could not load the status (${e.message}); retrying.`;
    } finally {
      inFlight = false;
      if (again) { again = false; void refresh(); }
    }
  }

  // Many events arrive together (progress); one refresh per quarter second is plenty. The server
  // serves a snapshot again for up to 2 s (STATUS_SNAPSHOT_MAX_AGE_MS in server.ts), so one more
  // refresh after the last event of a burst shows what that event changed.
  let pending;
  let trailing;
  const soon = () => {
    if (!pending) pending = setTimeout(() => { pending = undefined; void refresh(); }, 250);
    clearTimeout(trailing);
    trailing = setTimeout(() => { void refresh(); }, 2500);
  };

  // A server with too many live pages open answers 503 and EventSource gives up: the page keeps
  // its 15 s refresh and tries the live stream again a minute later.
  function listen() {
    const events = new EventSource('/status/events');
    events.addEventListener('open', () => { $('connection').textContent = 'live'; $('connection').className = 'badge live'; soon(); });
    events.addEventListener('error', () => {
      const closed = events.readyState === EventSource.CLOSED;
      $('connection').textContent = closed ? 'updating every 15 s' : 'reconnecting…';
      $('connection').className = 'badge offline';
      if (closed) setTimeout(listen, 60_000);
    });
    events.addEventListener('job', soon);
  }
  listen();

  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    void refresh();
  });
  setInterval(refresh, 15000);
  void refresh();
})();
