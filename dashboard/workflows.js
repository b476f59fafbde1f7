// The workflow view: the nodes and edges of a workflow run, coloured by status, laid out by depth
// (a node sits one column right of the deepest node it needs). Clicking a node that ran opens its
// run in the main dashboard (#run=<executionId>). Data: GET /workflows, POST /workflows/:name/runs,
// GET /workflow-runs/:id (polled while the run goes on).

const KEY_STORAGE = 'oao.apiKey';
const POLL_MS = 500;
const API_BASE = new URL('../', document.baseURI);
const SVG = 'http://www.w3.org/2000/svg';
const BOX = { width: 150, height: 44, gapX: 60, gapY: 24 };
const COLOURS = {
  waiting: ['#e2e7f0', '#637089'],
  running: ['#e6f3fb', '#0369a1'],
  SUCCESS: ['#e7f6ec', '#15803d'],
  FAILED: ['#fdecec', '#dc2626'],
  SKIPPED: ['#fdf3e1', '#b45309'],
};

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const el = {
  form: byTestId('workflow-form'),
  select: byTestId('workflow-select'),
  input: byTestId('workflow-input'),
  error: byTestId('workflow-error'),
  title: byTestId('workflow-title'),
  status: byTestId('workflow-status'),
  graph: byTestId('workflow-graph'),
};

async function api(path, init = {}) {
  const key = localStorage.getItem(KEY_STORAGE);
  const headers = { ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...(key ? { authorization: `Bearer ${key}` } : {}) };
  const response = await fetch(new URL(path, API_BASE), { ...init, headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`);
  return body;
}

function showError(message) {
  el.error.textContent = message;
  el.error.hidden = message === '';
}

/** Column of each node: one right of the deepest node it needs. */
function layout(nodes) {
  const depth = new Map();
  for (const node of nodes) depth.set(node.name, node.needs.reduce((d, need) => Math.max(d, (depth.get(need) ?? 0) + 1), 0));
  const rows = new Map();
  const place = new Map();
  for (const node of nodes) {
    const column = depth.get(node.name);
    const row = rows.get(column) ?? 0;
    rows.set(column, row + 1);
    place.set(node.name, { x: 10 + column * (BOX.width + BOX.gapX), y: 10 + row * (BOX.height + BOX.gapY) });
  }
  return place;
}

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function draw(view) {
  const nodes = view.shape.nodes;
  const place = layout(nodes);
  const reports = new Map();
  for (const [name, node] of Object.entries(view.result?.nodes ?? {})) reports.set(name, node.report?.executionId ?? node.reports?.[0]?.executionId);
  el.graph.replaceChildren();
  let width = 0;
  let height = 0;
  for (const node of nodes) {
    const to = place.get(node.name);
    for (const need of node.needs) {
      const from = place.get(need);
      el.graph.append(svg('line', { x1: from.x + BOX.width, y1: from.y + BOX.height / 2, x2: to.x, y2: to.y + BOX.height / 2, stroke: '#94a3b8', 'stroke-width': 1.5, 'data-edge': `${need}->${node.name}` }));
    }
  }
  for (const node of nodes) {
    const { x, y } = place.get(node.name);
    const status = view.nodes[node.name] ?? 'waiting';
    const [fill, stroke] = COLOURS[status] ?? COLOURS.waiting;
    const executionId = reports.get(node.name);
    const group = svg('g', { 'data-testid': 'workflow-node', 'data-node': node.name, 'data-status': status, tabindex: 0, role: 'button', 'aria-label': `${node.name}: ${status}` });
    group.append(svg('rect', { x, y, width: BOX.width, height: BOX.height, rx: 8, fill, stroke, 'stroke-width': 2 }));
    group.append(svg('text', { x: x + 10, y: y + 18, 'font-size': 13, 'font-weight': 600, fill: '#172033' }, node.fanOut ? `${node.name} ×` : node.name));
    group.append(svg('text', { x: x + 10, y: y + 35, 'font-size': 11, fill: stroke }, status));
    if (executionId !== undefined) {
      group.style.cursor = 'pointer';
      const open = () => (location.href = new URL(`./#run=${encodeURIComponent(executionId)}`, document.baseURI).href);
      group.addEventListener('click', open);
      group.addEventListener('keydown', (event) => event.key === 'Enter' && open());
    }
    el.graph.append(group);
    width = Math.max(width, x + BOX.width + 10);
    height = Math.max(height, y + BOX.height + 10);
  }
  el.graph.setAttribute('width', width);
  el.graph.setAttribute('height', height);
  el.graph.setAttribute('viewBox', `0 0 ${width} ${height}`);
  el.title.textContent = `${view.workflow} · ${view.workflowRunId}`;
  el.status.textContent = view.status;
  el.status.dataset.status = view.status;
}

let following = 0;
async function follow(id) {
  const mine = ++following;
  for (;;) {
    let view;
    try {
      view = await api(`workflow-runs/${encodeURIComponent(id)}`);
    } catch (error) {
      showError(error.message);
      return;
    }
    if (mine !== following) return;
    draw(view);
    if (view.status !== 'running') return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function fromHash() {
  const match = /^#workflow-run=(.+)$/.exec(location.hash);
  if (match) void follow(decodeURIComponent(match[1]));
}

el.form.addEventListener('submit', async (event) => {
  event.preventDefault();
  showError('');
  let input;
  try {
    input = JSON.parse(el.input.value || 'null');
  } catch {
    showError('The input must be JSON.');
    return;
  }
  try {
    const started = await api(`workflows/${encodeURIComponent(el.select.value)}/runs`, { method: 'POST', body: JSON.stringify({ input }) });
    location.hash = `workflow-run=${encodeURIComponent(started.workflowRunId)}`;
  } catch (error) {
    showError(error.message);
  }
});

window.addEventListener('hashchange', fromHash);
try {
  const { workflows } = await api('workflows');
  el.select.replaceChildren(...workflows.map(({ name }) => Object.assign(document.createElement('option'), { value: name, textContent: name })));
} catch (error) {
  showError(error.message);
}
fromHash();
