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

/**
 * Whether two values have the same canonical JSON: a structural walk that builds no text, with
 * `canonicalJson` itself as the judge of anything the walk cannot decide on its own (a `toJSON`
 * method, numbers JSON writes alike such as -0 and 0, values JSON drops or rewrites). Equal
 * values, the common case when checking a log against its report, cost one pass and no garbage.
 */
export function sameCanonicalJson(a: unknown, b: unknown): boolean {
  return structurallyEqual(a, b, 0) || canonicalJson(a) === canonicalJson(b);
}

/** True only when `a` and `b` certainly have the same canonical JSON; false when unsure. */
function structurallyEqual(a: unknown, b: unknown, depth: number): boolean {
  if (a === b) return typeof a !== 'function' && typeof a !== 'symbol' && typeof a !== 'bigint' && (typeof a !== 'number' || Number.isFinite(a));
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || depth > 64) return false;
  if (typeof (a as { toJSON?: unknown }).toJSON === 'function' || typeof (b as { toJSON?: unknown }).toJSON === 'function') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!structurallyEqual(a[i], b[i], depth + 1)) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key)) return false;
    if (!structurallyEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return true;
}
