/**
 * JSON with object keys sorted at every level, so equal values always give equal text. Used for
 * execution hashes. Values that JSON cannot represent are handled as JSON.stringify handles them
 * (undefined and functions dropped from objects); cycles throw a TypeError.
 */
export function canonicalJson(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  const text = JSON.stringify(sortKeys(value, new Set()));
  return text ?? 'null';
}

function sortKeys(value: unknown, ancestors: Set<object>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const json = (value as { toJSON?: unknown }).toJSON;
  if (typeof json === 'function') return sortKeys((json as () => unknown).call(value), ancestors);
  if (ancestors.has(value)) throw new TypeError('Converting circular structure to JSON');
  ancestors.add(value);
  let result: unknown;
  if (Array.isArray(value)) {
    result = value.map((item) => sortKeys(item, ancestors));
  } else {
    // Null prototype: a key named "__proto__" is data here, as it is in JSON.
    const sorted = Object.create(null) as Record<string, unknown>;
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeys((value as Record<string, unknown>)[key], ancestors);
    result = sorted;
  }
  ancestors.delete(value);
  return result;
}
