// DOM helpers. Everything the page shows is built node by node: text goes in as text nodes and
// attributes one by one, never as markup, because run data (tasks, agent outputs, tool results)
// is untrusted.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An HTML element. `attributes` values that are null, undefined or false are left out, true
 * sets an empty attribute, and `on<event>` functions become listeners. Children are nodes or
 * values shown as text; arrays are flattened and null / false children skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attributes);
  appendChildren(element, children);
  return element;
}

/** The same, for SVG elements. */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  setAttributes(element, attributes);
  appendChildren(element, children);
  return element;
}

function setAttributes(element, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
}

function appendChildren(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children (text or nodes, as for `h`). */
export function setChildren(element, ...children) {
  element.replaceChildren();
  appendChildren(element, children);
}

/** Shows a message in an element that is hidden while it has none. */
export function setMessage(element, message) {
  element.textContent = message ?? '';
  element.hidden = message === null || message === undefined || message === '';
}

/** Looks an element up by its data-testid, which doubles as the page's stable element id. */
export function byTestId(testId, root = document) {
  const element = root.querySelector(`[data-testid="${testId}"]`);
  if (element === null) throw new Error(`The page has no element ${testId}`);
  return element;
}
