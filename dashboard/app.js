// The dashboard page: wires the API, the run list, and the panels of the selected run together.
// All run data comes from the OAO API next to this page: GET /agents, GET /policy (the server's
// limits, shown in the start form), POST /runs, GET /runs
// (polled about once a second while the tab is visible), GET /runs/:id, the run's event stream
// (read with fetch, so it can carry the API key), POST /runs/:id/cancel, and the tool calls
// waiting for a person: GET /approvals (polled with the runs) and POST /runs/:id/approvals/:callId.

import { createApi, runPath } from './api.js';
import { approvalKey, renderApprovals } from './approvals.js';
import { byTestId, h, setMessage } from './dom.js';
import { EventLog } from './eventLog.js';
import { formatClock, formatLimit, limitLabel, preview } from './format.js';
import { renderGauges } from './gauges.js';
import { renderReport } from './report.js';
import { badgeText, renderRunList } from './runList.js';
import { deriveRun, LIMIT_NAMES, loweredLimits } from './runModel.js';
import { followRunEvents } from './sse.js';
import { createStatechart } from './statechart.js';
import { renderTimeline } from './timeline.js';

const KEY_STORAGE = 'oao.apiKey';
const POLL_MS = 1_000;
const TICK_MS = 250;
const RETRY_CONNECT_MS = 2_000;
const RUN_PAGE = 50;
/** The dashboard is served at <api>/dashboard/, so the API is one level up. */
const API_BASE = new URL('../', document.baseURI);

const el = {
  version: byTestId('version'),
  connection: byTestId('connection'),
  connectionText: document.querySelector('.connection-text'),
  forgetKey: byTestId('forget-key'),
  keyPanel: byTestId('api-key-panel'),
  keyForm: byTestId('api-key-form'),
  keyInput: byTestId('api-key-input'),
  keyError: byTestId('api-key-error'),
  main: byTestId('main'),
  startForm: byTestId('start-form'),
  agentSelect: byTestId('agent-select'),
  agentDescription: byTestId('agent-description'),
  taskInput: byTestId('task-input'),
  formError: byTestId('form-error'),
  limitsWarning: byTestId('limits-warning'),
  startButton: byTestId('start-button'),
  runList: byTestId('run-list'),
  approvalsPanel: byTestId('approvals-panel'),
  approvalList: byTestId('approval-list'),
  approvalCount: byTestId('approval-count'),
  approvalsError: byTestId('approvals-error'),
  runCount: byTestId('run-count'),
  statusFilter: byTestId('status-filter'),
  detail: byTestId('run-detail'),
  emptyDetail: byTestId('empty-detail'),
  detailBody: document.querySelector('.detail-body'),
  runTitle: byTestId('run-title'),
  runSubtitle: byTestId('run-subtitle'),
  streamState: byTestId('stream-state'),
  detailStatus: byTestId('detail-status'),
  cancelButton: byTestId('cancel-button'),
  detailNotice: byTestId('detail-notice'),
  statechartPanel: byTestId('statechart-panel'),
  gauges: byTestId('gauges'),
  effectiveLimits: byTestId('effective-limits'),
  limitsLowered: byTestId('limits-lowered'),
  timeline: byTestId('timeline'),
  report: byTestId('report'),
  eventLog: byTestId('event-log'),
  eventCount: byTestId('event-count'),
  followLog: byTestId('follow-log'),
  announcer: byTestId('announcer'),
};

const app = {
  config: null,
  statechart: null,
  /** statechart.json as served, kept to redraw the chart when the screen changes between wide and narrow. */
  chart: null,
  runs: [],
  runsTotal: 0,
  runsCapped: false,
  polling: false,
  pollInFlight: false,
  /** Bumped each time the page locks: answers to requests sent before it are ignored. */
  keyGeneration: 0,
  /** The key in use was just typed and has not been accepted yet (a refusal means a typo, not a change). */
  keyTyped: false,
  /** The page asks for a key and calls nothing until it has one. */
  locked: false,
  pollTimer: undefined,
  tickTimer: undefined,
  renderQueued: false,
  /** Client clock minus server clock, as small as any event has shown it (latency only adds). */
  clockOffset: null,
  /** The run on the right: its id, events, GET /runs/:id answer, and the stream's state. */
  selected: null,
  /** The limits this tab asked for, by run: to say which ones the server lowered. */
  requested: new Map(),
  /** The server's own limits (GET /policy): the most any run can get. */
  serverLimits: null,
  /** Tool calls waiting for a decision (GET /approvals), oldest first. */
  approvals: [],
  /** False once the server answered GET /approvals 404 (a server without approvals): the panel stays hidden. */
  approvalsServed: true,
  /** The decision being sent, by call (approvalKey), and the last error about a call. */
  approvalBusy: new Map(),
  approvalErrors: new Map(),
};

const eventLog = new EventLog(el.eventLog, el.eventCount);
/** The report the report panel shows (it is rebuilt only when that changes). */
let renderedReport;

// ---- API key --------------------------------------------------------------------------------

function readKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return '';
  }
}

/** The key in use; storage only keeps it across reloads of this tab. */
let memoryKey = readKey();

function writeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage refused (a locked-down browser): the key lasts as long as the page instead.
  }
  memoryKey = key;
}

const api = createApi({ base: API_BASE, getKey: () => memoryKey, onUnauthorized: (error) => lock(error) });

/** Stops everything that calls the API and asks for a key (again), saying why. */
function lock(error) {
  // Requests sent together with a refused key are refused together: the first one says why.
  if (app.locked && error !== null) return;
  app.locked = true;
  // Answers to requests sent before this moment must not unlock the page again.
  app.keyGeneration += 1;
  stopPolling();
  stopFollowing();
  // Followed again (from the address's #run=) once a key is accepted.
  app.selected = null;
  el.detailBody.hidden = true;
  el.emptyDetail.hidden = false;
  el.detail.removeAttribute('data-run-id');
  el.detail.removeAttribute('data-status');
  eventLog.reset();
  writeKey('');
  el.main.hidden = true;
  el.keyPanel.hidden = false;
  // There is no key to forget while the page asks for one.
  el.forgetKey.hidden = true;
  setMessage(el.keyError, keyRefusal(error, app.keyTyped));
  app.keyTyped = false;
  setConnection('locked', 'API key needed');
  el.keyInput.value = '';
  el.keyInput.focus();
}

/**
 * Why the page asks for a key (again), in words for the person at it: the server's own message
 * tells an API client which header to send, which means nothing to someone typing into a form.
 * The stable code stays at the end, to look up in the error reference.
 */
function keyRefusal(error, typed) {
  if (error === null || error === undefined) return null;
  if (error.status !== 401) return error.display ?? String(error);
  return typed
    ? `The server did not accept this API key. Check it and try again. (${error.code})`
    : `The API key this tab was using is no longer accepted; the server may have been restarted with other keys. Enter a current key. (${error.code})`;
}

el.keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = el.keyInput.value.trim();
  if (key === '') {
    setMessage(el.keyError, 'Enter an API key.');
    return;
  }
  writeKey(key);
  app.keyTyped = true;
  app.locked = false;
  setMessage(el.keyError, null);
  void connect();
});

el.forgetKey.addEventListener('click', () => lock(null));

// ---- connection state and announcements -----------------------------------------------------

const CONNECTION_TEXT = { connecting: 'connecting…', live: 'live', paused: 'paused (tab hidden)', offline: 'offline', locked: 'locked' };

function setConnection(state, detail) {
  el.connection.setAttribute('data-state', state);
  el.connectionText.textContent = CONNECTION_TEXT[state] ?? state;
  el.connection.title = detail ?? '';
}

function announce(message) {
  el.announcer.textContent = message;
}

// ---- clock ----------------------------------------------------------------------------------

function noteServerTime(timestamp) {
  const offset = Date.now() - timestamp;
  if (app.clockOffset === null || offset < app.clockOffset) app.clockOffset = offset;
}

/** Now on the server's clock: event timestamps and run times are the server's. */
function serverNow() {
  return Date.now() - (app.clockOffset ?? 0);
}

// ---- start up -------------------------------------------------------------------------------

/** A phone-sized screen gets the chart top to bottom (the breakpoint of the page's phone CSS). */
const narrowScreen = window.matchMedia('(max-width: 640px)');
/** Below this width (the page's CSS) the run's panels come after the form and the run list. */
const oneColumn = window.matchMedia('(max-width: 1100px)');

/** Draws the lifecycle chart for the screen's width, showing the selected run on it. */
function buildStatechart() {
  app.statechart = createStatechart(app.chart, { vertical: narrowScreen.matches });
  el.statechartPanel.replaceChildren(app.statechart.element);
  app.statechart.update(app.selected?.view ?? null);
}

narrowScreen.addEventListener('change', () => {
  if (app.chart !== null) buildStatechart();
});

async function getStatic(name) {
  const response = await fetch(new URL(name, document.baseURI), { cache: 'no-cache' });
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
  return response.json();
}

async function boot() {
  try {
    const [config, chart] = await Promise.all([getStatic('config.json'), getStatic('statechart.json')]);
    app.config = config;
    app.chart = chart;
  } catch (error) {
    setConnection('offline', String(error?.message ?? error));
    setTimeout(() => void boot(), RETRY_CONNECT_MS);
    return;
  }
  el.version.textContent = `v${app.config.version}`;
  buildStatechart();
  el.forgetKey.hidden = !app.config.secured;
  if (app.config.secured && memoryKey === '') {
    lock(null);
    return;
  }
  await connect();
}

/**
 * Loads the agents (which also proves the key) and the server's limits, then shows the dashboard
 * and starts polling.
 */
async function connect() {
  setConnection('connecting');
  const generation = app.keyGeneration;
  let agents;
  let serverPolicy;
  try {
    // A server without GET /policy still works: the form then shows no ceiling.
    [{ agents }, serverPolicy] = await Promise.all([api.get('agents'), api.get('policy').catch((error) => (error.status === 404 ? null : Promise.reject(error)))]);
  } catch (error) {
    if (error.status === 401 || generation !== app.keyGeneration) return; // lock() already asks for a key.
    setConnection('offline', error.display ?? String(error));
    setTimeout(() => void connect(), RETRY_CONNECT_MS);
    return;
  }
  if (generation !== app.keyGeneration) return;
  app.keyTyped = false;
  app.locked = false;
  renderAgents(agents);
  app.serverLimits = serverPolicy?.policy ?? null;
  showServerLimits(app.serverLimits);
  el.keyPanel.hidden = true;
  el.forgetKey.hidden = !app.config.secured;
  el.main.hidden = false;
  setConnection('live');
  startPolling();
  const fromHash = runIdFromHash();
  if (fromHash !== null) select(fromHash);
}

function renderAgents(agents) {
  const previous = el.agentSelect.value;
  el.agentSelect.replaceChildren(...agents.map((agent) => h('option', { value: agent.name }, agent.name)));
  if (agents.some((agent) => agent.name === previous)) el.agentSelect.value = previous;
  const describe = () => {
    const chosen = agents.find((agent) => agent.name === el.agentSelect.value);
    setMessage(el.agentDescription, chosen?.description ?? null);
  };
  el.agentSelect.onchange = describe;
  describe();
}

// ---- the run list ---------------------------------------------------------------------------

function startPolling() {
  app.polling = true;
  void poll();
}

function stopPolling() {
  app.polling = false;
  clearTimeout(app.pollTimer);
}

async function poll() {
  clearTimeout(app.pollTimer);
  if (!app.polling || app.pollInFlight) return;
  if (document.hidden) {
    // Resumed by visibilitychange: a hidden tab costs the server nothing.
    setConnection('paused');
    return;
  }
  app.pollInFlight = true;
  const generation = app.keyGeneration;
  try {
    await Promise.all([refreshRuns(generation), refreshApprovals(generation)]);
    if (generation === app.keyGeneration) setConnection('live');
  } catch (error) {
    if (error.status !== 401 && generation === app.keyGeneration) setConnection('offline', error.display ?? String(error));
  } finally {
    app.pollInFlight = false;
  }
  if (app.polling) app.pollTimer = setTimeout(() => void poll(), POLL_MS);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && app.polling) void poll();
  if (!document.hidden) scheduleRender();
});

async function refreshRuns(generation = app.keyGeneration) {
  const query = new URLSearchParams({ limit: String(RUN_PAGE) });
  if (el.statusFilter.value !== '') query.set('status', el.statusFilter.value);
  const page = await api.get(`runs?${query.toString()}`);
  if (generation !== app.keyGeneration) return;
  app.runs = page.runs;
  app.runsTotal = page.total;
  // The server counts up to a bound; past it, the count is a floor.
  app.runsCapped = page.totalCapped === true;
  renderRuns();
}

el.statusFilter.addEventListener('change', () => void refreshRuns().catch(() => {}));

/** The list as polled, with the selected run as its own stream knows it (which is fresher). */
function renderRuns() {
  const view = app.selected?.view ?? null;
  const runs = app.runs.map((run) => {
    if (run.executionId !== app.selected?.id || view?.report == null || run.status !== 'running') return run;
    return { ...run, status: view.report.status, termination: view.report.termination, finishedAt: view.report.finishedAt };
  });
  renderRunList(el.runList, runs, { selectedId: app.selected?.id ?? null, now: serverNow(), onSelect: select });
  el.runCount.textContent = app.runsTotal > runs.length ? `${runs.length} of ${app.runsTotal}${app.runsCapped ? '+' : ''}` : String(runs.length);
}

// ---- tool calls waiting for approval -------------------------------------------------------

async function refreshApprovals(generation = app.keyGeneration) {
  if (!app.approvalsServed) return;
  let body;
  try {
    body = await api.get('approvals');
  } catch (error) {
    if (error.status !== 404) throw error;
    // A server from before approvals: there is nothing to show.
    app.approvalsServed = false;
    el.approvalsPanel.hidden = true;
    return;
  }
  if (generation !== app.keyGeneration) return;
  app.approvals = body.approvals;
  const waiting = new Set(app.approvals.map(approvalKey));
  // An error about a call that no longer waits (someone else decided it) stays said, above the list.
  for (const [key, message] of app.approvalErrors) {
    if (waiting.has(key)) continue;
    app.approvalErrors.delete(key);
    setMessage(el.approvalsError, message);
  }
  renderApprovalsPanel();
}

function renderApprovalsPanel() {
  el.approvalsPanel.hidden = !app.approvalsServed;
  renderApprovals(el.approvalList, app.approvals, {
    now: serverNow(),
    busy: app.approvalBusy,
    errors: app.approvalErrors,
    onDecide: (approval, decision, reason) => void decide(approval, decision, reason),
    onSelect: select,
  });
  el.approvalCount.textContent = app.approvals.length === 0 ? '' : String(app.approvals.length);
}

/** Sends one decision; the call leaves the list once the server has taken it. */
async function decide(approval, decision, reason) {
  const key = approvalKey(approval);
  if (app.approvalBusy.has(key)) return;
  app.approvalBusy.set(key, decision);
  app.approvalErrors.delete(key);
  renderApprovalsPanel();
  try {
    const path = runPath(approval.executionId, `/approvals/${encodeURIComponent(approval.callId)}`);
    const decided = await api.post(path, { decision, ...(reason ? { reason } : {}) });
    app.approvals = app.approvals.filter((pending) => approvalKey(pending) !== key);
    setMessage(el.approvalsError, null);
    const who = decided.by ? ` by ${decided.by}` : '';
    announce(`${decided.decision === 'approved' ? 'Approved' : 'Denied'} ${approval.tool} (call ${approval.callId}) of run ${approval.executionId}${who}`);
  } catch (error) {
    if (error.status === 401) return;
    // Someone else decided first (409), the run ended, or this key may not decide (403): say so.
    app.approvalErrors.set(key, `${approval.tool} (call ${approval.callId}) of run ${approval.executionId}: ${error.display ?? String(error)}`);
  } finally {
    app.approvalBusy.delete(key);
    renderApprovalsPanel();
  }
  void refreshApprovals().catch(() => {});
  void refreshRuns().catch(() => {});
}

// ---- the selected run -----------------------------------------------------------------------

function runIdFromHash() {
  const match = /^#run=(.+)$/.exec(location.hash);
  if (match === null) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

window.addEventListener('hashchange', () => {
  const id = runIdFromHash();
  if (id !== null && !el.main.hidden) select(id);
});

function stopFollowing() {
  app.selected?.controller.abort();
  clearInterval(app.tickTimer);
}

function select(id) {
  if (app.selected?.id === id) return;
  stopFollowing();
  const selected = {
    id,
    events: [],
    summary: null,
    view: null,
    controller: new AbortController(),
    streamStatus: 'connecting',
    notice: null,
    cancelling: false,
    announced: false,
  };
  app.selected = selected;
  if (runIdFromHash() !== id) history.replaceState(null, '', `#run=${encodeURIComponent(id)}`);
  eventLog.reset();
  renderedReport = undefined;
  el.emptyDetail.hidden = true;
  el.detailBody.hidden = false;
  renderRuns();
  render();
  // In one column the run is below the form and the list: bring it into view.
  if (oneColumn.matches) el.detail.scrollIntoView({ block: 'start' });
  void loadRun(selected);
  void follow(selected);
  app.tickTimer = setInterval(() => {
    if (!document.hidden && app.selected === selected && selected.view?.finished === false) scheduleRender();
  }, TICK_MS);
}

async function loadRun(selected) {
  try {
    const summary = await api.get(runPath(selected.id));
    if (app.selected !== selected) return;
    selected.summary = summary;
  } catch (error) {
    if (app.selected !== selected || error.status === 401) return;
    selected.notice = error.display ?? String(error);
  }
  scheduleRender();
}

async function follow(selected) {
  try {
    const outcome = await followRunEvents({
      url: api.url(runPath(selected.id, '/events')),
      headers: api.authHeaders,
      signal: selected.controller.signal,
      onStatus: (status) => {
        selected.streamStatus = status;
        scheduleRender();
      },
      onEvent: (event) => {
        noteServerTime(event.timestamp);
        selected.events.push(event);
        if (event.type === 'EXECUTION_COMPLETE') finished(selected, event.payload.report);
        scheduleRender();
      },
    });
    // Interrupted (its process stopped): no more events will come; GET /runs/:id says so.
    if (outcome.ended && app.selected === selected) await loadRun(selected);
  } catch (error) {
    if (app.selected !== selected) return;
    if (error.status === 401) {
      lock(error);
      return;
    }
    // The events are gone (evicted) or the run is unknown: what GET /runs/:id has is shown instead.
    selected.notice = error.status === 404 ? `${error.display}` : (error.display ?? String(error));
    await loadRun(selected);
  }
}

function finished(selected, report) {
  if (selected.announced) return;
  selected.announced = true;
  const reason = report.termination.reason;
  announce(`Run ${selected.id} finished: ${report.status} (${reason})`);
  // The list hears about it on its next poll; ask now so it agrees at once.
  void refreshRuns().catch(() => {});
  void loadRun(selected);
}

el.cancelButton.addEventListener('click', () => void cancelSelected());

async function cancelSelected() {
  const selected = app.selected;
  if (selected === null) return;
  selected.cancelling = true;
  render();
  try {
    const outcome = await api.post(runPath(selected.id, '/cancel'), { reason: 'cancelled from the dashboard' });
    // The run's own end, heard on its stream, says more; this is for when it has not arrived yet.
    if (!selected.announced) announce(outcome.message);
  } catch (error) {
    selected.notice = error.display ?? String(error);
    selected.cancelling = false;
  }
  scheduleRender();
  void refreshRuns().catch(() => {});
}

// ---- the server's limits --------------------------------------------------------------------

/** Sets a message only when it changes: the elements are live regions, and a rewrite re-announces. */
function setMessageOnce(element, message) {
  if (element.textContent !== (message ?? '') || element.hidden !== !message) setMessage(element, message);
}

function limitList(entries) {
  return entries.join(' · ');
}

/** The server's limits (GET /policy) as each field's placeholder and maximum: the ceiling is never a surprise. */
function showServerLimits(limits) {
  for (const input of el.startForm.querySelectorAll('[data-limit]')) {
    const limit = limits?.[input.dataset.limit];
    if (typeof limit !== 'number') continue;
    input.placeholder = `${limit} (server limit)`;
    input.max = String(limit);
  }
}

/** Says, while the form is filled in, which values are above the server's limits. */
function warnAboveServerLimits() {
  const requested = {};
  for (const input of el.startForm.querySelectorAll('[data-limit]')) {
    const raw = input.value.trim();
    if (raw !== '' && Number.isFinite(Number(raw))) requested[input.dataset.limit] = Number(raw);
  }
  const above = loweredLimits(requested, app.serverLimits);
  setMessageOnce(
    el.limitsWarning,
    above.length === 0
      ? null
      : `Above the server's limit, and a run never gets more: ${limitList(above.map(({ name, requested: asked, applied }) => `${limitLabel(name)} ${formatLimit(name, asked)} (limit ${formatLimit(name, applied)})`))}`,
  );
}

/** The limits the run got (EXECUTION_START's policy), and which of those asked for here the server lowered. */
function renderLimits(view, requested) {
  const applied = view.limits;
  setMessageOnce(
    el.effectiveLimits,
    applied === null ? null : `Limits of this run: ${limitList(LIMIT_NAMES.map((name) => `${limitLabel(name)} ${formatLimit(name, applied[name])}`))}`,
  );
  const lowered = loweredLimits(requested, applied);
  setMessageOnce(
    el.limitsLowered,
    lowered.length === 0
      ? null
      : `The server lowered what was asked for to its own limits: ${limitList(lowered.map(({ name, requested: asked, applied: got }) => `${limitLabel(name)} ${formatLimit(name, asked)} → ${formatLimit(name, got)}`))}`,
  );
}

// ---- starting a run -------------------------------------------------------------------------

// An error answers the form as it was: once it changes, the error no longer applies.
el.startForm.addEventListener('input', () => setMessage(el.formError, null));
el.startForm.addEventListener('input', () => warnAboveServerLimits());

el.startForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void startRun();
});

async function startRun() {
  setMessage(el.formError, null);
  const agent = el.agentSelect.value;
  const task = el.taskInput.value;
  if (agent === '' || task.trim() === '') {
    setMessage(el.formError, agent === '' ? 'Choose an agent.' : 'Give the agent a task.');
    return;
  }
  const policy = {};
  for (const input of el.startForm.querySelectorAll('[data-limit]')) {
    const raw = input.value.trim();
    if (raw === '') continue;
    const value = Number(raw);
    if (!Number.isSafeInteger(value)) {
      setMessage(el.formError, `${input.labels?.[0]?.textContent ?? input.dataset.limit}: expected a whole number, got "${raw}"`);
      input.focus();
      return;
    }
    // Range checks are the server's: its error names the field and the rule.
    policy[input.dataset.limit] = value;
  }
  el.startButton.disabled = true;
  try {
    const started = await api.post('runs', { agent, task, ...(Object.keys(policy).length > 0 ? { policy } : {}) });
    announce(`Run ${started.executionId} of ${agent} started`);
    app.requested.set(started.executionId, policy);
    select(started.executionId);
    void refreshRuns().catch(() => {});
  } catch (error) {
    setMessage(el.formError, error.display ?? String(error));
  } finally {
    el.startButton.disabled = false;
  }
}

// ---- rendering ------------------------------------------------------------------------------

/** Renders at most once per frame, however many events arrive in it. */
function scheduleRender() {
  if (app.renderQueued) return;
  app.renderQueued = true;
  requestAnimationFrame(() => {
    app.renderQueued = false;
    render();
  });
}

const STREAM_TEXT = { connecting: 'connecting…', open: 'following live', reconnecting: 'reconnecting…' };

/** "waiting for approval: sendEmail (t1)", while calls of the run wait for a person. */
function waitingText(waiting) {
  return waiting.length === 0 ? '' : `waiting for approval: ${waiting.map(({ tool, callId }) => `${tool} (${callId})`).join(', ')}`;
}

function render() {
  const selected = app.selected;
  if (selected === null) return;
  // The events of an interrupted run end without a report: the server's status says what it is,
  // and its open spans end where its events do rather than growing with the clock.
  const interrupted = selected.summary?.status === 'interrupted' && selected.summary.report == null;
  const now = interrupted ? (selected.events.at(-1)?.timestamp ?? serverNow()) : serverNow();
  const view = deriveRun(selected.events, { now, report: selected.summary?.report ?? null });
  const wasFinished = selected.view?.finished ?? false;
  selected.view = view;
  const status = interrupted && !view.finished ? 'interrupted' : (view.status ?? selected.summary?.status ?? null);
  const reason = view.report?.termination.reason ?? null;

  el.detail.setAttribute('data-run-id', selected.id);
  el.detail.setAttribute('data-status', status ?? '');
  el.runTitle.textContent = selected.id;
  const agent = view.agentName ?? selected.summary?.agent ?? '';
  const startedAt = selected.summary?.startedAt ?? (view.eventCount > 0 ? view.origin : null);
  el.runSubtitle.textContent = [
    agent && `agent ${agent}`,
    startedAt !== null && `started ${formatClock(startedAt)}`,
    view.task !== undefined && `task ${preview(view.task, 70)}`,
  ]
    .filter(Boolean)
    .join(' · ');
  // Updated in place, and only when it changes: it is a live region.
  const statusText = badgeText(status ?? '…', reason);
  if (el.detailStatus.textContent !== statusText) {
    el.detailStatus.textContent = statusText;
    el.detailStatus.className = `badge badge-${String(status ?? 'unknown').toLowerCase()}`;
    el.detailStatus.setAttribute('data-status', status ?? '');
  }
  el.streamState.textContent = view.finished
    ? selected.events.length > 0
      ? 'complete'
      : 'from the report'
    : status === 'interrupted'
      ? 'interrupted: its process stopped'
      : [STREAM_TEXT[selected.streamStatus] ?? '', waitingText(view.waitingForApproval)].filter(Boolean).join(' · ');
  // Only a running run can be cancelled: a finished one has no button at all.
  el.cancelButton.hidden = status !== 'running';
  el.cancelButton.disabled = status !== 'running' || selected.cancelling;
  el.cancelButton.textContent = selected.cancelling && status === 'running' ? 'Cancelling…' : 'Cancel run';
  setMessage(el.detailNotice, selected.notice);

  app.statechart?.update(view);
  renderGauges(el.gauges, view);
  renderLimits(view, app.requested.get(selected.id) ?? null);
  renderTimeline(el.timeline, view);
  eventLog.update(selected.events, el.followLog.checked);
  if (renderedReport !== view.report) {
    renderedReport = view.report;
    renderReport(el.report, view);
  }
  if (view.finished && !wasFinished) renderRuns();
}

window.addEventListener('resize', () => scheduleRender());

void boot();
