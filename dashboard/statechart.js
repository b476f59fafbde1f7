// The lifecycle statechart as inline SVG, drawn from /dashboard/statechart.json (which the
// server derives from the machine that runs). The running states sit left to right in
// definition order, the failure state below them; on a narrow screen they go top to bottom, the
// failure state beside them, so the names stay readable. Each update only moves classes around.

import { svg } from './dom.js';

const NODE_W = 120;
const NODE_H = 52;
const GAP = 72;
const PAD_X = 34;
const ROW_Y = 70;
const LOWER_Y = 200;
const LOWER_W = 220;
const LINE = 11;
// Top to bottom: room on the left for the labels of edges that go back up, a column of states,
// and the failure states in a column on the right.
const V_LEFT = 112;
const V_TOP = 40;
const V_GAP = 46;
const V_SIDE_GAP = 70;
const V_SIDE_W = 96;
const V_SIDE_H = 76;
const V_PAD = 14;

/**
 * Where each state's box goes: one row of states, and final states after the first set apart
 * below (`vertical`: one column, and those set apart in a column on the right).
 */
export function layoutStatechart(chart, { vertical = false } = {}) {
  const firstFinal = chart.states.findIndex((state) => state.final);
  const lower = chart.states.filter((state, index) => state.final && index !== firstFinal);
  const main = chart.states.filter((state) => !lower.includes(state));
  if (vertical) return layoutVertical(main, lower);
  const width = PAD_X * 2 + main.length * NODE_W + Math.max(0, main.length - 1) * GAP;
  const boxes = new Map();
  main.forEach((state, index) => {
    boxes.set(state.name, { state, row: 0, index, x: PAD_X + index * (NODE_W + GAP), y: ROW_Y, w: NODE_W, h: NODE_H });
  });
  const lowerWidth = lower.length * LOWER_W + Math.max(0, lower.length - 1) * GAP;
  lower.forEach((state, index) => {
    boxes.set(state.name, { state, row: 1, index, x: (width - lowerWidth) / 2 + index * (LOWER_W + GAP), y: LOWER_Y, w: LOWER_W, h: NODE_H });
  });
  const height = lower.length > 0 ? LOWER_Y + NODE_H + 30 : ROW_Y + NODE_H + 20;
  return { width, height, boxes, vertical: false };
}

function layoutVertical(main, lower) {
  const boxes = new Map();
  main.forEach((state, index) => {
    boxes.set(state.name, { state, row: 0, index, x: V_LEFT, y: V_TOP + index * (NODE_H + V_GAP), w: NODE_W, h: NODE_H });
  });
  const columnHeight = main.length * NODE_H + Math.max(0, main.length - 1) * V_GAP;
  const sideX = V_LEFT + NODE_W + V_SIDE_GAP;
  const sideHeight = lower.length * V_SIDE_H + Math.max(0, lower.length - 1) * V_GAP;
  lower.forEach((state, index) => {
    const y = V_TOP + (columnHeight - sideHeight) / 2 + index * (V_SIDE_H + V_GAP);
    boxes.set(state.name, { state, row: 1, index, x: sideX, y, w: V_SIDE_W, h: V_SIDE_H });
  });
  const width = (lower.length > 0 ? sideX + V_SIDE_W : V_LEFT + NODE_W) + V_PAD;
  const height = V_TOP + columnHeight + V_PAD;
  return { width, height, boxes, vertical: true };
}

const centerX = (box) => box.x + box.w / 2;
const centerY = (box) => box.y + box.h / 2;

function arrowMarker(id, className) {
  return svg(
    'marker',
    { id, class: className, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
    svg('path', { d: 'M 0 0 L 10 5 L 0 10 z' }),
  );
}

function label(lines, x, y, anchor = 'middle') {
  return svg('text', { class: 'sc-label', x, y, 'text-anchor': anchor }, lines.map((line, index) => svg('tspan', { x, dy: index === 0 ? 0 : LINE }, line)));
}

/** Up to two events on their own lines; more are counted. */
function eventLines(events) {
  if (events.length <= 2) return [...events];
  return [events[0], `+${events.length - 1} more`];
}

/**
 * The path of one edge in the top-to-bottom layout (its labels go into `labels`): down to the
 * next state, back up in an arc on the left, or across to a failure state on the right.
 */
function verticalEdge(edge, source, target, arrivals, labels) {
  if (source.row === 0 && target.row === 0 && target.index === source.index + 1) {
    const x = centerX(source);
    const lines = eventLines(edge.events);
    labels.append(label(lines, x + 8, (source.y + source.h + target.y) / 2 + 4 - ((lines.length - 1) * LINE) / 2, 'start'));
    return `M ${x} ${source.y + source.h} L ${x} ${target.y - 2}`;
  }
  if (source.row === 0 && target.row === 0) {
    const backwards = target.index < source.index;
    const y1 = centerY(source) + (backwards ? -10 : 10);
    const y2 = centerY(target) + (backwards ? 10 : -10);
    const lift = 30 + 6 * Math.abs(target.index - source.index);
    labels.append(label([edge.events.join(' · ')], source.x - lift * 0.75 - 6, (y1 + y2) / 2 + 4, 'end'));
    return `M ${source.x} ${y1} C ${source.x - lift} ${y1} ${target.x - lift} ${y2} ${target.x - 2} ${y2}`;
  }
  if (source.row === 0 && target.row === 1) {
    const list = arrivals.get(edge.target) ?? [edge];
    const slot = list.indexOf(edge);
    const y2 = target.y + ((slot + 0.5) * target.h) / list.length;
    const x1 = source.x + source.w;
    const y1 = centerY(source);
    const middle = (x1 + target.x) / 2;
    return `M ${x1} ${y1} C ${middle} ${y1} ${middle} ${y2} ${target.x - 2} ${y2}`;
  }
  return `M ${centerX(source)} ${centerY(source)} L ${centerX(target)} ${centerY(target)}`;
}

/**
 * Builds the chart once (`vertical`: top to bottom, for narrow screens); `update(view)` then
 * marks the current state, the states visited (with how often) and the edges the run has taken.
 */
export function createStatechart(chart, { vertical = false } = {}) {
  const { width, height, boxes } = layoutStatechart(chart, { vertical });
  const root = svg('svg', {
    class: vertical ? 'sc is-vertical' : 'sc',
    'data-layout': vertical ? 'vertical' : 'horizontal',
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': 'Lifecycle statechart',
    'data-testid': 'statechart',
    preserveAspectRatio: 'xMidYMid meet',
  });
  root.append(svg('defs', {}, arrowMarker('sc-arrow', 'sc-marker'), arrowMarker('sc-arrow-taken', 'sc-marker sc-marker-taken')));

  const edgeLayer = svg('g', { class: 'sc-edges' });
  const labelLayer = svg('g', { class: 'sc-labels' });
  const nodeLayer = svg('g', { class: 'sc-nodes' });
  root.append(edgeLayer, labelLayer, nodeLayer);

  // Where edges arrive on a lower box: spread along its top (its left side when vertical), in the
  // order of their sources.
  const arrivals = new Map();
  for (const edge of chart.edges) {
    const target = boxes.get(edge.target);
    if (target?.row === 1) arrivals.set(edge.target, [...(arrivals.get(edge.target) ?? []), edge]);
  }
  const along = vertical ? (box) => box?.y ?? 0 : (box) => box?.x ?? 0;
  for (const list of arrivals.values()) list.sort((a, b) => along(boxes.get(a.source)) - along(boxes.get(b.source)));

  const edgeElements = new Map();
  for (const edge of chart.edges) {
    const source = boxes.get(edge.source);
    const target = boxes.get(edge.target);
    if (source === undefined || target === undefined) continue;
    let d;
    if (vertical) {
      d = verticalEdge(edge, source, target, arrivals, labelLayer);
    } else if (source.row === 0 && target.row === 0 && target.index === source.index + 1) {
      const y = centerY(source);
      d = `M ${source.x + source.w} ${y} L ${target.x - 2} ${y}`;
      const lines = eventLines(edge.events);
      labelLayer.append(label(lines, (source.x + source.w + target.x) / 2, y - 8 - (lines.length - 1) * LINE));
    } else if (source.row === 0 && target.row === 0) {
      // Back (or skipping) edges arc over the row; the further they reach, the higher.
      const backwards = target.index < source.index;
      const x1 = centerX(source) + (backwards ? -14 : 14);
      const x2 = centerX(target) + (backwards ? 14 : -14);
      const lift = 44 + 8 * Math.abs(target.index - source.index);
      d = `M ${x1} ${source.y} C ${x1} ${source.y - lift} ${x2} ${target.y - lift} ${x2} ${target.y - 2}`;
      labelLayer.append(label([edge.events.join(' · ')], (x1 + x2) / 2, source.y - lift * 0.75 - 5));
    } else if (target.row === 1 && source.row === 0) {
      const list = arrivals.get(edge.target) ?? [edge];
      const slot = list.indexOf(edge);
      const x2 = target.x + ((slot + 0.5) * target.w) / list.length;
      const x1 = centerX(source);
      const y1 = source.y + source.h;
      const middle = (y1 + target.y) / 2;
      d = `M ${x1} ${y1} C ${x1} ${middle} ${x2} ${middle} ${x2} ${target.y - 2}`;
    } else {
      d = `M ${centerX(source)} ${centerY(source)} L ${centerX(target)} ${centerY(target)}`;
    }
    const path = svg(
      'path',
      { class: 'sc-edge', d, 'marker-end': 'url(#sc-arrow)', 'data-edge': `${edge.source}>${edge.target}` },
      svg('title', {}, `${edge.source} → ${edge.target}: ${edge.events.join(', ')}`),
    );
    edgeLayer.append(path);
    edgeElements.set(`${edge.source}>${edge.target}`, path);
  }

  // Events that lead into a lower state from every state that reaches it are said once, under it.
  for (const [name, list] of arrivals) {
    const box = boxes.get(name);
    const common = list[0].events.filter((event) => list.every((edge) => edge.events.includes(event)));
    if (common.length > 0 && vertical) {
      labelLayer.append(label(['from every state:', ...common], centerX(box), box.y + box.h + 18));
    } else if (common.length > 0) {
      labelLayer.append(label([`from every state: ${common.join(' · ')}`], centerX(box), box.y + box.h + 18));
    }
  }

  const initial = chart.initial === null ? undefined : boxes.get(chart.initial);
  if (initial !== undefined && vertical) {
    const x = centerX(initial);
    nodeLayer.append(
      svg('circle', { class: 'sc-initial', cx: x, cy: initial.y - 22, r: 5 }),
      svg('path', { class: 'sc-edge', d: `M ${x} ${initial.y - 17} L ${x} ${initial.y - 2}`, 'marker-end': 'url(#sc-arrow)' }),
    );
  } else if (initial !== undefined) {
    const y = centerY(initial);
    nodeLayer.append(
      svg('circle', { class: 'sc-initial', cx: initial.x - 22, cy: y, r: 5 }),
      svg('path', { class: 'sc-edge', d: `M ${initial.x - 17} ${y} L ${initial.x - 2} ${y}`, 'marker-end': 'url(#sc-arrow)' }),
    );
  }

  const nodeElements = new Map();
  for (const box of boxes.values()) {
    const { state } = box;
    const group = svg('g', {
      class: `sc-node state-${state.name}${state.final ? ' is-final' : ''}`,
      'data-testid': 'state-node',
      'data-state': state.name,
      'data-current': 'false',
      'data-visited': 'false',
    });
    const title = svg('title', {}, state.name);
    group.append(title, svg('rect', { class: 'sc-box', x: box.x, y: box.y, width: box.w, height: box.h, rx: 12 }));
    if (state.final) {
      group.append(svg('rect', { class: 'sc-box-inner', x: box.x + 4, y: box.y + 4, width: box.w - 8, height: box.h - 8, rx: 9 }));
    }
    const hasSubstates = state.substates.length > 0;
    group.append(svg('text', { class: 'sc-name', x: centerX(box), y: centerY(box) + (hasSubstates ? -3 : 4), 'text-anchor': 'middle' }, state.name));
    if (hasSubstates) {
      group.append(svg('text', { class: 'sc-sub', x: centerX(box), y: centerY(box) + 13, 'text-anchor': 'middle' }, state.substates.join(' · ')));
    }
    // Where a run waits for a person in this state (approvals, a raised budget).
    const waits = state.waits ?? [];
    if (waits.length > 0) {
      const names = [...new Set(waits.map((path) => path.split('.').pop().replace('AWAITING_', '').toLowerCase()))];
      group.append(svg('text', { class: 'sc-sub sc-waits', 'data-testid': 'state-waits', x: centerX(box), y: centerY(box) + 25, 'text-anchor': 'middle' }, `awaits ${names.join(' · ')}`));
    }
    const visitsText = svg('text', { class: 'sc-visits-text', x: box.x + box.w - 4, y: box.y + 2, 'text-anchor': 'middle' });
    const visits = svg('g', { class: 'sc-visits', 'data-testid': 'state-visits' },
      svg('circle', { cx: box.x + box.w - 4, cy: box.y - 2, r: 10 }),
      visitsText,
    );
    visits.style.display = 'none';
    group.append(visits);
    nodeLayer.append(group);
    nodeElements.set(state.name, { group, visits, visitsText, title, state });
  }

  function update(view) {
    const current = view?.currentState ?? null;
    for (const [name, { group, visits, visitsText, title, state }] of nodeElements) {
      const count = view?.visits.get(name) ?? 0;
      const isCurrent = name === current;
      group.classList.toggle('is-current', isCurrent);
      group.classList.toggle('is-visited', count > 0);
      group.classList.toggle('is-live', isCurrent && view?.finished === false);
      group.classList.toggle('is-success', isCurrent && state.final && view?.status === 'SUCCESS');
      group.classList.toggle('is-failure', isCurrent && state.final && view?.status === 'FAILED');
      group.setAttribute('data-current', String(isCurrent));
      group.setAttribute('data-visited', String(count > 0));
      visits.style.display = count > 1 ? '' : 'none';
      visitsText.textContent = `×${count}`;
      const waitsNote = (state.waits ?? []).length > 0 ? `; waits: ${state.waits.join(', ')}` : '';
      const kind = state.final ? 'final state' : state.substates.length > 0 ? `substates: ${state.substates.join(', ')}${waitsNote}` : 'state';
      title.textContent = `${name} (${kind})${count > 0 ? ` · entered ${count} time${count === 1 ? '' : 's'}` : ''}${isCurrent ? ' · current' : ''}`;
    }
    for (const [key, path] of edgeElements) {
      const isTaken = view?.taken.has(key) ?? false;
      path.classList.toggle('is-taken', isTaken);
      path.setAttribute('marker-end', isTaken ? 'url(#sc-arrow-taken)' : 'url(#sc-arrow)');
    }
    root.setAttribute('aria-label', current === null ? 'Lifecycle statechart' : `Lifecycle statechart; current state ${current}`);
  }

  update(null);
  return { element: root, update };
}
