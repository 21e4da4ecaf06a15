// alertstream view: the stream page. Every text from an alert goes into the
// page through textContent or an attribute, never as markup; the server's
// Content-Security-Policy allows no inline script besides.
'use strict';

/** A number as the server wrote it: integers past 2^53 (ZTF's candid,
 * Rubin's ids) keep every digit, which a JavaScript number would not. */
class Exact {
  constructor(text) { this.text = text; }
}

/** JSON with big integers kept exact (JSON.parse's source text access). */
function parseExact(text) {
  return JSON.parse(text, (key, value, context) =>
    (typeof value === 'number' && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source))
      ? new Exact(context.source) : value);
}

const token = new URLSearchParams(location.search).get('token');
const state = { rows: [], selected: -1, where: '', feed: null, lastSeq: 0, loaded: null, maxRows: 2000 };

/** A same-origin address with the query parameters given (and the token). */
function address(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  if (token) query.set('token', token);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

function alertPath(row) {
  return [row.topic, row.partition, row.offset].map(encodeURIComponent).join('/');
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function fixed(value, digits) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(digits) : '';
}

function utc(ms) {
  return typeof ms === 'number' ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '';
}

function rowElement(row) {
  const tr = document.createElement('tr');
  const flux = row.unit === 'nJy';
  const cells = [
    row.object_id ?? '', utc(row.time_ms), fixed(row.ra, 5), fixed(row.dec, 5), row.band ?? '',
    row.value === null || row.value === undefined ? '' : (flux ? fixed(row.value, 1) + ' nJy' : fixed(row.value, 3)),
    fixed(row.error, flux ? 1 : 3), fixed(row.score, 3), row.topic,
  ];
  for (const text of cells) tr.appendChild(el('td', null, text));
  tr.addEventListener('click', () => select(state.rows.indexOf(row)));
  row.element = tr;
  return tr;
}

function renderRows() {
  const body = document.querySelector('#alerts tbody');
  body.replaceChildren(...state.rows.map(rowElement));
  document.getElementById('shown').textContent = String(state.rows.length);
}

function addRow(row) {
  state.rows.unshift(row);
  const body = document.querySelector('#alerts tbody');
  body.insertBefore(rowElement(row), body.firstChild);
  if (state.selected >= 0) state.selected += 1;
  while (state.rows.length > state.maxRows) {
    const gone = state.rows.pop();
    gone.element.remove();
    if (state.selected >= state.rows.length) state.selected = -1;
  }
  document.getElementById('shown').textContent = String(state.rows.length);
}

/** Loads the kept alerts the filter selects, then follows new ones. */
async function load() {
  const error = document.getElementById('where-error');
  const response = await fetch(address('/api/alerts', { where: state.where, limit: state.maxRows }));
  const body = await response.json();
  if (!response.ok) {
    error.textContent = body.error || `HTTP ${response.status}`;
    return;
  }
  error.textContent = '';
  state.rows = body.alerts;
  state.selected = -1;
  renderRows();
  follow(body.last_seq);
  state.loaded = Date.now();
}

/** New alerts as they arrive: those after `lastSeq`, the newest the list holds. */
function follow(lastSeq) {
  if (state.feed) state.feed.close();
  state.feed = new EventSource(address('/api/events', { where: state.where, after: lastSeq }));
  state.lastSeq = lastSeq;
  state.feed.addEventListener('alert', (event) => {
    const row = JSON.parse(event.data);
    // A reconnected feed starts again from the same place: show each alert once.
    if (row.seq <= state.lastSeq) return;
    state.lastSeq = row.seq;
    addRow(row);
  });
  state.feed.addEventListener('stats', (event) => renderTopics(JSON.parse(event.data)));
  state.feed.addEventListener('lagged', () => load());
}

function renderTopics(stats) {
  const box = document.getElementById('topics');
  box.replaceChildren(...stats.topics.map(topicElement));
}

function topicElement(topic) {
  const div = el('div', 'topic');
  div.dataset.topic = topic.topic;
  div.appendChild(el('div', 'name', topic.topic));
  const end = topic.at_end ? ' (read to the end)' : '';
  div.appendChild(el('div', 'numbers', `${topic.alerts} alerts read, ${topic.rate.toFixed(1)}/s over the last minute${end}`));
  div.appendChild(sparkline(topic.series));
  for (const lag of topic.lags) div.appendChild(el('div', 'lag', `group ${lag.group}: lag ${lag.lag ?? '?'}`));
  if (topic.skipped) div.appendChild(el('div', 'skipped', `${topic.skipped} skipped (undecodable)`));
  return div;
}

/** Alerts/s per 10 s over the last 5 minutes, as bars. */
function sparkline(series) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  const width = 180, height = 30, top = Math.max(1, ...series);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  const step = width / Math.max(1, series.length);
  series.forEach((value, i) => {
    const bar = document.createElementNS(ns, 'rect');
    const h = (value / top) * (height - 2);
    bar.setAttribute('class', 'bar');
    bar.setAttribute('x', (i * step).toFixed(1));
    bar.setAttribute('y', (height - h).toFixed(1));
    bar.setAttribute('width', Math.max(1, step - 1).toFixed(1));
    bar.setAttribute('height', h.toFixed(1));
    const title = document.createElementNS(ns, 'title');
    title.textContent = `${value.toFixed(1)} alerts read/s`;
    bar.appendChild(title);
    svg.appendChild(bar);
  });
  return svg;
}

function select(index) {
  if (index < 0 || index >= state.rows.length) return;
  if (state.selected >= 0 && state.rows[state.selected]) state.rows[state.selected].element.classList.remove('selected');
  state.selected = index;
  const row = state.rows[index];
  row.element.classList.add('selected');
  row.element.scrollIntoView({ block: 'nearest' });
  show(row);
}

/** The alert page: cutouts, light curve, downloads, every field. */
async function show(row) {
  const detail = document.getElementById('detail');
  detail.hidden = false;
  detail.dataset.alert = `${row.topic}/${row.partition}/${row.offset}/${row.index}`;
  document.getElementById('detail-title').textContent = row.object_id ?? '(no object id)';
  document.getElementById('detail-where').textContent =
    `${row.topic} partition ${row.partition} offset ${row.offset}` + (row.index ? ` alert ${row.index}` : '') + ` (${row.framing})`;
  const path = alertPath(row);
  const index = row.index || undefined;
  showCutouts(row, path, index);
  showLightCurve(path, index, detail.dataset.alert);
  showDownloads(path, index);
  const response = await fetch(address(`/api/alerts/${path}`, { index }));
  const fields = document.getElementById('fields');
  fields.replaceChildren(response.ok ? tree('alert', parseExact(await response.text()), true) : el('p', null, 'no longer kept'));
}

async function showCutouts(row, path, index) {
  const pixels = fetch(address(`/api/alerts/${path}/cutouts`, { index })).then((r) => r.json());
  for (const stamp of ['science', 'template', 'difference']) {
    const figure = document.getElementById(`cutout-${stamp}`);
    const img = figure.querySelector('img');
    figure.querySelector('.why').textContent = '';
    figure.querySelector('.pixel').textContent = '';
    img.onmousemove = null;
    img.src = address(`/cutouts/${path}/${stamp}.png`, { index });
  }
  const described = await pixels;
  for (const stamp of ['science', 'template', 'difference']) {
    const figure = document.getElementById(`cutout-${stamp}`);
    const image = described[stamp] || {};
    if (image.error) {
      figure.querySelector('.why').textContent = image.error;
      continue;
    }
    const img = figure.querySelector('img');
    figure.dataset.width = image.width;
    figure.dataset.height = image.height;
    img.onmousemove = (event) => {
      const x = Math.floor((event.offsetX / img.clientWidth) * image.width);
      const fromTop = Math.floor((event.offsetY / img.clientHeight) * image.height);
      const y = image.height - 1 - fromTop; // FITS row 0 is at the bottom
      const value = image.pixels[y * image.width + x];
      figure.querySelector('.pixel').textContent = `(${x}, ${y}) = ${value === null || value === undefined ? 'NaN' : value}`;
    };
  }
}

async function showLightCurve(path, index, shown) {
  const box = document.getElementById('lightcurve');
  const response = await fetch(address(`/api/alerts/${path}/lightcurve.svg`, { index }));
  if (document.getElementById('detail').dataset.alert !== shown) return;
  if (!response.ok) {
    box.replaceChildren(el('p', null, 'no light curve'));
    return;
  }
  const parsed = new DOMParser().parseFromString(await response.text(), 'image/svg+xml');
  const svg = parsed.documentElement;
  // An SVG from this server carries no script; drop any anyway.
  svg.querySelectorAll('script, foreignObject').forEach((node) => node.remove());
  box.replaceChildren(document.importNode(svg, true));
}

function showDownloads(path, index) {
  const box = document.getElementById('downloads');
  const link = (text, href) => {
    const a = el('a', null, text);
    a.href = href;
    a.setAttribute('download', '');
    return a;
  };
  box.replaceChildren(
    link('message (Avro)', address(`/api/alerts/${path}/raw`)),
    ...['science', 'template', 'difference'].map((s) => link(`${s}.fits`, address(`/cutouts/${path}/${s}.fits`, { index }))),
  );
}

/** Every field as a collapsible tree. */
function tree(name, value, open) {
  if (value !== null && typeof value === 'object' && !(value instanceof Exact)) {
    const details = document.createElement('details');
    details.open = Boolean(open);
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    details.appendChild(el('summary', null, Array.isArray(value) ? `${name} [${value.length}]` : name));
    for (const [key, inner] of entries) details.appendChild(tree(key, inner, false));
    return details;
  }
  const leaf = el('div', 'leaf');
  leaf.appendChild(el('span', 'key', `${name}: `));
  leaf.appendChild(el('span', 'value', value instanceof Exact ? value.text : JSON.stringify(value)));
  return leaf;
}

function onKey(event) {
  if (event.target instanceof HTMLInputElement) return;
  if (event.key === 'j' || event.key === 'ArrowDown') {
    select(state.selected + 1);
    event.preventDefault();
  } else if (event.key === 'k' || event.key === 'ArrowUp') {
    select(Math.max(0, state.selected - 1));
    event.preventDefault();
  }
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('filter').addEventListener('submit', (event) => {
    event.preventDefault();
    state.where = document.getElementById('where').value.trim();
    load();
  });
  document.addEventListener('keydown', onKey);
  fetch(address('/api/stats')).then((r) => r.json()).then((stats) => {
    state.maxRows = stats.keep || state.maxRows;
    renderTopics(stats);
    load();
  });
});
