/**
 * JSON text for an inspection message: cycles become "[Circular]", anything nested deeper than
 * `depthLimit` becomes "[Object]" / "[Array]", functions become `{ type: name }` (as XState's own
 * definitions show them), bigints become strings and errors keep name and message. Never throws
 * on what an actor may hold.
 */
export function toInspectorJson(value: unknown, depthLimit: number): string {
  return JSON.stringify(normalize(value, depthLimit, [])) ?? 'null';
}

function normalize(value: unknown, depthLeft: number, ancestors: object[]): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'undefined' || typeof value === 'symbol') return undefined;
  if (typeof value === 'function') return { type: value.name };
  const object = value;
  if (ancestors.includes(object)) return '[Circular]';
  if (depthLeft <= 0) return Array.isArray(object) ? '[Array]' : '[Object]';
  const toJSON = (object as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    let json: unknown;
    try {
      json = (toJSON as () => unknown).call(object);
    } catch {
      return '[Unserializable]';
    }
    if (json !== object) return normalize(json, depthLeft, ancestors);
  }
  ancestors.push(object);
  try {
    if (object instanceof Error) return { name: object.name, message: object.message };
    if (Array.isArray(object)) return object.map((item) => normalize(item, depthLeft - 1, ancestors) ?? null);
    if (object instanceof Map) return normalize(Object.fromEntries(object), depthLeft, ancestors);
    if (object instanceof Set) return normalize([...object], depthLeft, ancestors);
    const result: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(object)) {
      const normalized = normalize(field, depthLeft - 1, ancestors);
      if (normalized !== undefined) result[key] = normalized;
    }
    return result;
  } finally {
    ancestors.pop();
  }
}
