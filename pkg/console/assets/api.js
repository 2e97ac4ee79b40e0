// The failures API as the console calls it: one fetch wrapper, the key kept for this tab, and
// errors carrying the API's own {"error", "detail"} answer.

// The page is served at <prefix>/console/, the API at <prefix>/failures and <prefix>/me:
// under the Functions host and under `dvrouter serve` alike, prefix is /api.
const apiBase = new URL('../', document.baseURI);

// The key lives in sessionStorage: it is gone when the tab closes, and other tabs and sites
// never see it. It is sent in the header the failures API reads (the Functions host accepts a
// function key in the same header).
const keyName = 'dvrouter.adminKey';
const keyHeader = 'x-functions-key';

export function storedKey() {
  return sessionStorage.getItem(keyName) || '';
}

export function keepKey(key) {
  if (key) sessionStorage.setItem(keyName, key);
  else sessionStorage.removeItem(keyName);
}

// APIError is a refusal from the API (status, its error and detail), or an answer that is not
// the API's (status 0 for no answer at all).
export class APIError extends Error {
  constructor(status, title, detail) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail || '';
  }
}

// call sends one request and returns the decoded JSON answer. query is an object of
// parameters (empty values left out); body, when given, is sent as JSON.
export async function call(method, path, { query, body, key = storedKey() } = {}) {
  const url = new URL(path, apiBase);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== '' && value != null) url.searchParams.set(name, String(value));
  }
  const headers = { Accept: 'application/json' };
  if (key) headers[keyHeader] = key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin',
      // A redirect here is App Service authentication sending an expired session to sign in:
      // the page must be reloaded for that, a fetch cannot follow it.
      redirect: 'manual',
    });
  } catch (err) {
    throw new APIError(0, 'dvrouter cannot be reached', String(err.message || err));
  }
  if (resp.type === 'opaqueredirect') {
    throw new APIError(401, 'sign-in expired', 'reload the page to sign in again');
  }
  const text = await resp.text();
  let data = null;
  if ((resp.headers.get('Content-Type') || '').includes('json')) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    if (data && typeof data.error === 'string') {
      throw new APIError(resp.status, data.error, typeof data.detail === 'string' ? data.detail : '');
    }
    throw new APIError(resp.status, `HTTP ${resp.status} ${resp.statusText}`.trim(), '');
  }
  if (data === null) {
    throw new APIError(resp.status, 'unexpected answer', `${url.pathname} did not answer JSON`);
  }
  return data;
}

// failurePath is the API path of one failure, or of an action on it.
export function failurePath(id, action) {
  const p = `failures/${encodeURIComponent(id)}`;
  return action ? `${p}/${action}` : p;
}
