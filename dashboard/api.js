// Calls to the OAO HTTP API. Every call carries the API key when there is one; every error
// answer ({ error: { code, message, details? } }) becomes an ApiError with that code and message,
// so the page can show the user exactly what the server said.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** "OAO_ERR_INVALID_POLICY: body.policy.maxSteps: Too small…" */
  get display() {
    return `${this.code}: ${this.message}`;
  }
}

/** The ApiError of a response that is not ok, from its error body when it has one. */
export async function errorOf(response) {
  let body = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    // Not JSON (a proxy's page, say): the status line is all there is.
  }
  const error = body?.error;
  if (typeof error?.code === 'string' && typeof error?.message === 'string') {
    return new ApiError(response.status, error.code, error.message, error.details);
  }
  return new ApiError(response.status, `HTTP_${response.status}`, response.statusText || 'The server answered with an error');
}

/** The error thrown when the request never got an answer. */
export function networkError(error) {
  return new ApiError(0, 'NETWORK_ERROR', `The server cannot be reached (${error?.message ?? error})`);
}

/**
 * A client of the API at `base` (a URL ending in `/`). `getKey()` is read on every call, so a
 * new key applies at once; `onUnauthorized(error)` hears about every 401.
 */
export function createApi({ base, getKey, onUnauthorized = () => {} }) {
  /** The headers every call needs: the bearer key, when there is one. */
  function authHeaders() {
    const key = getKey();
    return key ? { authorization: `Bearer ${key}` } : {};
  }

  async function call(method, path, body) {
    const headers = { accept: 'application/json', ...authHeaders() };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response;
    try {
      response = await fetch(new URL(path, base), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (error) {
      throw networkError(error);
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (response.status === 401) onUnauthorized(error);
      throw error;
    }
    return response.status === 204 ? null : response.json();
  }

  return {
    authHeaders,
    url: (path) => new URL(path, base),
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body),
  };
}

/** The path of one run, with its id escaped. */
export function runPath(executionId, suffix = '') {
  return `runs/${encodeURIComponent(executionId)}${suffix}`;
}
