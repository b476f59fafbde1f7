// The Gantt view of a run: one lane each for lifecycle states, steps, model calls and tool calls,
// on a time axis from EXECUTION_START. Bars that are still open grow with the clock; denied tool
// calls, errors, violations, timeouts and cancellations are marked where they happened.

import { svg, setChildren, h } from './dom.js';
import { formatDuration, formatTick } from './format.js';
import { LANES, packRows } from './runModel.js';

const GUTTER = 100;
/** On a phone the lane names get less room, so the bars keep more. */
const NARROW_GUTTER = 84;
const NARROW_WIDTH = 480;
/** The narrowest the timeline gets; below the width of its card it fits the card exactly. */
const MIN_WIDTH = 280;
/** About one tick label per this many pixels. */
const TICK_SPACING = 60;
const RIGHT = 18;
const AXIS = 24;
const BAR_H = 16;
const ROW_GAP = 4;
const LANE_PAD = 7;
const MARK_H = 20;
const CHAR_W = 6.3;

/**
 * The time axis for a run of `span` ms: a round tick step (1, 2 or 5 times a power of ten, never
 * under 1 ms) giving at most about `count` ticks, and the axis end, the first multiple of the step
 * at or after `span`. The axis so ends within one step of the run's end: a 13 ms run gets an
 * axis to 14 ms, not a fixed minimum.
 */
export function timeAxis(span, count = 7) {
  const length = Number.isFinite(span) && span > 0 ? span : 0;
  const raw = Math.max(1, length / Math.max(1, count));
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = power * 10;
  for (const factor of [1, 2, 5]) {
    if (power * factor >= raw) {
      step = power * factor;
      break;
    }
  }
  // Rounding guards against 0.1 + 0.2 drift: the end is a whole number of steps.
  const end = Math.max(1, Math.ceil(length / step - 1e-9)) * step;
  return { step, end };
}

function spanTitle(span, elapsed) {
  const end = span.end ?? elapsed;
  const timing = span.end === span.start ? `at ${formatDuration(span.start)}` : `${formatDuration(span.start)} → ${formatDuration(end)} (${formatDuration(end - span.start)}${span.end === null ? ', running' : ''})`;
  return `${span.label}: ${timing}\n${span.detail ?? ''}`.trim();
}

/** Draws the timeline of `view` into `container`, sized to its width. */
export function renderTimeline(container, view) {
  if (view === null || (view.spans.length === 0 && view.marks.length === 0)) {
    setChildren(container, h('p', { class: 'muted empty-note' }, view === null ? '' : 'No events yet.'));
    return;
  }
  const width = Math.max(MIN_WIDTH, Math.floor(container.clientWidth || 0));
  const gutter = width < NARROW_WIDTH ? NARROW_GUTTER : GUTTER;
  // Room on the right for the name of the final state, drawn just after its marker.
  const finalLabel = view.spans.find((span) => span.status === 'final')?.label ?? '';
  const plotWidth = width - gutter - RIGHT - (finalLabel === '' ? 0 : finalLabel.length * CHAR_W + 14);
  // A little headroom while running, so growing bars do not sit against the edge; the axis then
  // ends on the next round value after the run (or the headroom), never far beyond it.
  const { step, end: domain } = timeAxis(view.finished ? view.elapsed : view.elapsed * 1.08, Math.min(7, Math.max(3, Math.floor(plotWidth / TICK_SPACING))));
  const x = (t) => gutter + (Math.min(Math.max(t, 0), domain) / domain) * plotWidth;

  const lanes = LANES.map((lane) => {
    const { placed, rows } = packRows(view.spans.filter((span) => span.lane === lane.id), view.elapsed);
    return { ...lane, placed, rows, height: rows * (BAR_H + ROW_GAP) - ROW_GAP + LANE_PAD * 2 };
  });
  const lanesHeight = lanes.reduce((sum, lane) => sum + lane.height, 0);
  const height = AXIS + lanesHeight + (view.marks.length > 0 ? MARK_H : 4);

  const root = svg('svg', {
    class: 'tl',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `Timeline: ${view.spans.length} bars over ${formatDuration(view.elapsed)}`,
    'data-axis-end': domain,
  });

  // Lanes, with their names in the gutter.
  let y = AXIS;
  for (const [index, lane] of lanes.entries()) {
    lane.y = y;
    root.append(
      svg('rect', { class: `tl-lane${index % 2 === 1 ? ' is-alt' : ''}`, x: 0, y, width, height: lane.height }),
      svg('text', { class: 'tl-lane-label', x: 12, y: y + lane.height / 2 + 4 }, lane.label),
    );
    y += lane.height;
  }

  // Axis and grid.
  const axis = svg('g', { class: 'tl-axis' });
  for (let index = 0; index * step <= domain + 1e-9; index += 1) {
    const t = index * step;
    const tx = x(t);
    axis.append(
      svg('line', { class: 'tl-grid', x1: tx, x2: tx, y1: AXIS - 4, y2: AXIS + lanesHeight }),
      svg('text', { class: 'tl-tick', x: tx, y: AXIS - 9, 'text-anchor': t === 0 ? 'start' : tx > width - RIGHT - 24 ? 'end' : 'middle' }, formatTick(t)),
    );
  }
  root.append(axis);

  // Bars.
  for (const lane of lanes) {
    for (const { span, row } of lane.placed) {
      const top = lane.y + LANE_PAD + row * (BAR_H + ROW_GAP);
      const x1 = x(span.start);
      const group = svg('g', {
        class: `tl-bar is-${span.status}${span.state ? ` state-${span.state}` : ''}`,
        'data-testid': 'timeline-bar',
        'data-lane': lane.id,
        'data-status': span.status,
      });
      group.append(svg('title', {}, spanTitle(span, view.elapsed)));
      if (span.status === 'denied') {
        const cy = top + BAR_H / 2;
        group.append(
          svg('circle', { class: 'tl-denied', cx: x1, cy, r: 6.5 }),
          svg('path', { class: 'tl-denied-x', d: `M ${x1 - 3} ${cy - 3} L ${x1 + 3} ${cy + 3} M ${x1 + 3} ${cy - 3} L ${x1 - 3} ${cy + 3}` }),
        );
        if (x1 + 10 + span.label.length * CHAR_W < width) {
          group.append(svg('text', { class: 'tl-bar-label is-outside', x: x1 + 10, y: top + BAR_H - 4 }, span.label));
        }
      } else if (span.status === 'final') {
        const cy = top + BAR_H / 2;
        group.append(svg('path', { class: 'tl-final', d: `M ${x1} ${cy - 7} L ${x1 + 7} ${cy} L ${x1} ${cy + 7} L ${x1 - 7} ${cy} Z` }));
        group.append(svg('text', { class: 'tl-bar-label is-outside', x: x1 + 10, y: top + BAR_H - 4 }, span.label));
      } else {
        const x2 = x(span.end ?? view.elapsed);
        const barWidth = Math.max(3, x2 - x1);
        group.append(svg('rect', { class: 'tl-rect', x: x1, y: top, width: barWidth, height: BAR_H, rx: 4 }));
        if (barWidth > span.label.length * CHAR_W + 10) {
          group.append(svg('text', { class: 'tl-bar-label', x: x1 + 5, y: top + BAR_H - 4 }, span.label));
        }
      }
      root.append(group);
    }
  }

  // Where something went wrong, across every lane.
  for (const mark of view.marks) {
    const mx = x(mark.at);
    root.append(
      svg(
        'g',
        { class: `tl-mark is-${mark.kind}`, 'data-testid': 'timeline-mark', 'data-kind': mark.kind },
        svg('title', {}, `${mark.label} at ${formatDuration(mark.at)}${mark.detail ? `: ${mark.detail}` : ''}`),
        svg('line', { x1: mx, x2: mx, y1: AXIS, y2: AXIS + lanesHeight }),
        svg('text', { x: Math.min(mx, width - RIGHT), y: AXIS + lanesHeight + 14, 'text-anchor': mx > width - 80 ? 'end' : 'middle' }, mark.label),
      ),
    );
  }

  if (!view.finished) {
    const nx = x(view.elapsed);
    root.append(svg('line', { class: 'tl-now', x1: nx, x2: nx, y1: AXIS - 4, y2: AXIS + lanesHeight }));
  }
  setChildren(container, root);
}
