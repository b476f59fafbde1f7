// The event log: one row per event (seq, time from the start, type, state, a one-line summary),
// each expandable to the event's full JSON. Rows are only ever appended, so a long run stays
// cheap to follow and an expanded row stays open.

import { h } from './dom.js';
import { eventCategory, formatOffset, prettyJson, summarizeEvent } from './format.js';

export class EventLog {
  #container;
  #count;
  #list;
  #rendered = 0;
  #origin = null;

  constructor(container, count) {
    this.#container = container;
    this.#count = count;
    this.reset();
  }

  /** Empties the log for another run. */
  reset() {
    this.#rendered = 0;
    this.#origin = null;
    this.#list = h('div', { class: 'event-rows' });
    this.#container.replaceChildren(
      h(
        'div',
        { class: 'event-head', 'aria-hidden': 'true' },
        h('span', {}, 'seq'),
        h('span', {}, 'time'),
        h('span', {}, 'type'),
        h('span', {}, 'state'),
        h('span', {}, 'details'),
      ),
      this.#list,
    );
    this.#count.textContent = '';
  }

  /** Shows the events not shown yet; keeps the newest in view when `follow` is on. */
  update(events, follow) {
    if (events.length === this.#rendered) return;
    const container = this.#container;
    this.#origin ??= events.find((event) => event.type === 'EXECUTION_START')?.timestamp ?? events[0]?.timestamp ?? 0;
    const rows = events.slice(this.#rendered).map((event) => this.#row(event));
    this.#list.append(...rows);
    this.#rendered = events.length;
    this.#count.textContent = String(events.length);
    if (follow) container.scrollTop = container.scrollHeight;
  }

  #row(event) {
    const row = h(
      'details',
      { class: `event-row cat-${eventCategory(event.type)}`, 'data-testid': 'event-row', 'data-type': event.type, 'data-seq': event.seq },
      h(
        'summary',
        {},
        h('span', { class: 'ev-seq' }, event.seq),
        h('span', { class: 'ev-time' }, formatOffset(event.timestamp - this.#origin)),
        h('span', { class: 'ev-type' }, event.type),
        h('span', { class: 'ev-state' }, event.state),
        h('span', { class: 'ev-summary' }, summarizeEvent(event)),
      ),
    );
    // The JSON is built when first opened: most rows never are.
    row.addEventListener('toggle', () => {
      if (row.open && row.querySelector('pre') === null) row.append(h('pre', { class: 'ev-json', 'data-testid': 'event-json' }, prettyJson(event)));
    });
    return row;
  }
}
