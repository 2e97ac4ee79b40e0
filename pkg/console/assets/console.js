// The support console: sign in, the failures list with its filters and pages, one failure with
// its payload, replay one, bulk replay (dry run first, then chunks with a progress bar) and
// discard, and the delivery history (the journal's outcomes of an event, a record, a correlation
// id or a consumer's day), the consumers (breakers and pauses; operators pause, resume,
// reset a breaker and send a test event) and change tracking's tables. Views are picked by the
// URL's hash: #/failures?filters, #/failures/<id>, #/history?lookup, #/consumers and #/changes.
import { APIError, call, failurePath, keepKey, storedKey } from './api.js';
import { fromLocalInput, h, localInput, num, show, text, timeZone, validTime, when } from './dom.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const nav = document.getElementById('nav');
const bulkDialog = document.getElementById('bulk');

// Bulk replay goes in requests of this many failures, so the progress bar moves and no request
// nears the time limit the Functions front end puts on an answer; the CLI does the same.
const replayChunk = 50;
const defaultReplayMax = 1000;
const maxReplayMax = 100000; // the API's limit
const pageSizes = [25, 50, 100, 200];
const statuses = ['pending', 'replaying', 'replayed', 'discarded'];
const kinds = ['delivery', 'breaker-open', 'paused', 'poison', 'reread'];
// The list filters, in the order the form shows them; each is a parameter of GET /api/failures.
const filterNames = ['consumer', 'table', 'status', 'kind', 'from', 'to'];

// session is who is signed in: {name, roles, via} from GET /api/me, and whether they may act.
const session = { me: null, operator: false };

// list is where the list is: its filters, the continuation token of each page seen so far
// (tokens[0] is the first page's, ''), and the page shown. Pages go forward by the API's
// continuation token and back by a token kept here; only the page shown is ever loaded and
// nothing is counted, so 10,000 pending failures cost what 50 do.
let list = { key: '', tokens: [''], index: 0 };

// Each render takes a ticket; an answer that arrives after the user moved on is dropped.
let ticket = 0;

// ---- signing in

// identify asks who the key (or the App Service sign-in, with no key) belongs to. A dvrouter
// without GET /api/me gives every key it accepts the operator role, and names it "key".
async function identify(key) {
  try {
    const me = await call('GET', 'me', { key });
    const roles = Array.isArray(me.roles) ? me.roles.map(text) : [];
    return { name: text(me.name) || 'unknown', roles, via: text(me.via) };
  } catch (err) {
    if (!(err instanceof APIError) || err.status !== 404) throw err;
  }
  await call('GET', 'failures', { query: { top: 1 }, key });
  return { name: 'key', roles: ['reader', 'operator'], via: 'key' };
}

function signedIn(me, key) {
  keepKey(me.via === 'appservice' ? '' : key);
  session.me = me;
  session.operator = me.roles.includes('operator');
  showWho();
}

function signOut() {
  const viaAppService = session.me && session.me.via === 'appservice';
  keepKey('');
  session.me = null;
  session.operator = false;
  if (viaAppService) {
    // App Service authentication's own sign-out ends the platform session.
    location.assign('/.auth/logout');
    return;
  }
  showWho();
  showSignIn();
}

function showWho() {
  nav.hidden = !session.me;
  if (!session.me) {
    who.hidden = true;
    who.replaceChildren();
    return;
  }
  const role = session.operator ? 'operator' : 'reader';
  show(who,
    h('span', { class: 'who-name', title: session.me.name }, session.me.name),
    h('span', { class: `role role-${role}` }, role),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
  who.hidden = false;
}

// showSignIn asks for an admin key. why, when set, says why the last try did not work.
function showSignIn(why) {
  ticket++;
  const input = h('input', { type: 'password', id: 'key', name: 'key', autocomplete: 'off', required: true, spellcheck: 'false' });
  const error = h('p', { class: 'error', role: 'alert', id: 'signin-error' }, why || '');
  error.hidden = !why;
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'signin', id: 'signin' },
    h('h1', null, 'Sign in'),
    h('p', null, 'Enter your admin key. It is kept for this browser tab only, and sent only to this dvrouter.'),
    h('label', { for: 'key' }, 'Admin key'),
    input,
    button,
    error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    error.hidden = true;
    try {
      signedIn(await identify(input.value.trim()), input.value.trim());
      route();
    } catch (err) {
      error.textContent = signInProblem(err);
      error.hidden = false;
      button.disabled = false;
      input.select();
    }
  });
  show(main, form);
  input.focus();
}

function signInProblem(err) {
  if (err instanceof APIError && err.status === 401) return 'That key was refused: check it and try again.';
  return problem(err);
}

// problem is an error for reading.
function problem(err) {
  if (err instanceof APIError) return err.message;
  return `Something went wrong in the page: ${err && err.message ? err.message : err}`;
}

// refused handles the error any view can get: a sign-in no longer accepted (401) goes back to
// the sign-in form. It reports whether it handled err.
function refused(err) {
  if (!(err instanceof APIError)) return false;
  if (err.status === 401 && session.me && session.me.via === 'appservice') {
    // The platform's session ended: signing in again is the platform's page, not a key.
    ticket++;
    show(main, h('section', { class: 'signin' },
      h('h1', null, 'Signed out'),
      h('p', null, 'Your sign-in has expired.'),
      h('button', { type: 'button', onclick: () => location.reload() }, 'Sign in again')));
    return true;
  }
  if (err.status === 401) {
    keepKey('');
    session.me = null;
    showWho();
    showSignIn('Your sign-in is no longer accepted: sign in again.');
    return true;
  }
  return false;
}

// notAllowed says what a 403 on an action means, and stops offering actions.
function notAllowed(err) {
  session.operator = false;
  showWho();
  return `Not allowed: your sign-in can list and show failures but not replay or discard them (${err.message}). Ask for the operator role.`;
}

// ---- routing

function route() {
  if (!session.me) {
    showSignIn();
    return;
  }
  const hash = location.hash.replace(/^#/, '') || '/failures';
  const [path, query] = splitOnce(hash, '?');
  if (path === '/failures') {
    showList(new URLSearchParams(query));
  } else if (path.startsWith('/failures/') && path.length > '/failures/'.length) {
    let id;
    try {
      id = decodeURIComponent(path.slice('/failures/'.length));
    } catch {
      id = path.slice('/failures/'.length); // not an escape of ours: let the API say it is no id
    }
    showFailure(id);
  } else if (path === '/history') {
    showHistory(new URLSearchParams(query));
  } else if (path === '/consumers') {
    showConsumers();
  } else if (path === '/changes') {
    showChanges();
  } else {
    location.hash = '#/failures';
  }
}

function splitOnce(s, sep) {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + 1)];
}

function listHash(filters, top) {
  const q = new URLSearchParams();
  for (const name of filterNames) if (filters[name]) q.set(name, filters[name]);
  if (top && top !== 50) q.set('top', String(top));
  const s = q.toString();
  return s ? `#/failures?${s}` : '#/failures';
}

// ---- the list

function readFilters(params) {
  const f = {};
  for (const name of filterNames) f[name] = (params.get(name) || '').trim();
  return f;
}

function readTop(params) {
  const top = Number(params.get('top'));
  return pageSizes.includes(top) ? top : 50;
}

async function showList(params) {
  const filters = readFilters(params);
  const top = readTop(params);
  const key = JSON.stringify([filters, top]);
  if (key !== list.key) list = { key, tokens: [''], index: 0 };

  const results = h('div', { class: 'results', id: 'results' }, h('p', { class: 'loading' }, 'Loading…'));
  show(main,
    h('h1', null, 'Failed deliveries'),
    filterForm(filters, top),
    results);
  await loadPage(results, filters, top);
}

async function loadPage(results, filters, top) {
  const mine = ++ticket;
  const at = list.index;
  let page;
  try {
    page = await call('GET', 'failures', { query: { ...filters, top, continuation: list.tokens[at] } });
  } catch (err) {
    if (mine !== ticket || refused(err)) return;
    show(results, h('p', { class: 'error', role: 'alert' }, problem(err)));
    return;
  }
  if (mine !== ticket) return;
  const items = Array.isArray(page.items) ? page.items : [];
  list.tokens[at + 1] = text(page.continuation);
  list.tokens.length = at + 2;

  const first = at * top + 1;
  const newer = h('button', { type: 'button', id: 'newer', disabled: at === 0 }, '← Newer');
  const older = h('button', { type: 'button', id: 'older', disabled: !list.tokens[at + 1] }, 'Older →');
  const turn = (by) => () => {
    newer.disabled = older.disabled = true; // one page turn at a time
    list.index += by;
    loadPage(results, filters, top);
  };
  newer.addEventListener('click', turn(-1));
  older.addEventListener('click', turn(1));
  const range = items.length ? `${num(first)}–${num(first + items.length - 1)}` : 'none';
  const more = list.tokens[at + 1] ? ', more older' : '';
  const toolbar = h('div', { class: 'toolbar' },
    h('span', { class: 'page-info', id: 'page-info' }, `Page ${num(at + 1)} · ${range}${more}`),
    h('span', { class: 'pager' }, newer, older),
    session.operator ? bulkButton(filters) : null);

  if (items.length === 0) {
    show(results, toolbar, h('p', { class: 'empty' }, at === 0 ? 'No failures match these filters (consumer and table are exact names).' : 'No more failures.'));
    return;
  }
  show(results, toolbar, failureTable(items));
}

function filterForm(filters, top) {
  const field = (name, label, input) =>
    h('div', { class: input.type === 'datetime-local' ? 'field time' : 'field' }, h('label', { for: `f-${name}` }, label), input);
  const textInput = (name, placeholder) =>
    h('input', { id: `f-${name}`, name, value: filters[name], placeholder, autocomplete: 'off', spellcheck: 'false' });
  const choice = (name, values, anyLabel) => {
    const sel = h('select', { id: `f-${name}`, name },
      h('option', { value: '' }, anyLabel),
      values.map((v) => h('option', { value: v }, v)));
    sel.value = filters[name];
    return sel;
  };
  const timeInput = (name) => h('input', { id: `f-${name}`, name, type: 'datetime-local', value: localInput(filters[name]) });
  const size = h('select', { id: 'f-top', name: 'top' }, pageSizes.map((n) => h('option', { value: n }, `${n} a page`)));
  size.value = String(top);

  const form = h('form', { class: 'filters', id: 'filters' },
    field('consumer', 'Consumer', textInput('consumer', 'any')),
    field('table', 'Table', textInput('table', 'any')),
    field('status', 'Status', choice('status', statuses, 'any')),
    field('kind', 'Kind', choice('kind', kinds, 'any')),
    field('from', 'Event time from', timeInput('from')),
    field('to', 'until (not included)', timeInput('to')),
    h('div', { class: 'field' }, h('label', { for: 'f-top' }, 'Show'), size),
    h('div', { class: 'field actions' },
      h('button', { type: 'submit', id: 'apply' }, 'Apply'),
      h('button', { type: 'button', class: 'secondary', id: 'clear', onclick: () => go('#/failures') }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const name of filterNames) next[name] = String(data.get(name) || '').trim();
    next.from = fromLocalInput(next.from);
    next.to = fromLocalInput(next.to);
    go(listHash(next, Number(data.get('top'))));
  });
  return form;
}

// go shows the view of hash, reloading it when it is the one shown already.
function go(hash) {
  const before = location.hash;
  location.hash = hash;
  if (location.hash === before) {
    // The same hash fires no hashchange: reload the view, from its first page.
    list.key = '';
    route();
  }
}

const knownStatus = new Set(statuses);

function statusBadge(status) {
  const s = text(status);
  return h('span', { class: `status status-${knownStatus.has(s) ? s : 'other'}` }, s || 'unknown');
}

function failureTable(items) {
  const head = h('tr', null,
    h('th', { scope: 'col' }, 'Event time', h('small', null, timeZone())),
    h('th', { scope: 'col' }, 'Status'),
    h('th', { scope: 'col' }, 'Consumer'),
    h('th', { scope: 'col' }, 'Event'),
    h('th', { scope: 'col', class: 'num' }, 'Attempts'),
    h('th', { scope: 'col' }, 'Last error'));
  const rows = items.map((f) => {
    const link = `#/failures/${encodeURIComponent(text(f.id))}`;
    const row = h('tr', { 'data-id': text(f.id) },
      h('td', { 'data-label': 'Event time' }, h('a', { href: link }, when(f.occurredAt) || '—')),
      h('td', { 'data-label': 'Status' }, statusBadge(f.status), f.kind !== 'delivery' ? h('span', { class: 'kind' }, text(f.kind)) : null),
      h('td', { 'data-label': 'Consumer' }, text(f.consumer) || '—'),
      h('td', { 'data-label': 'Event' }, [text(f.message), text(f.table)].filter(Boolean).join(' · ') || '—'),
      h('td', { 'data-label': 'Attempts', class: 'num' }, num(f.attempts)),
      h('td', { 'data-label': 'Last error', class: 'error-text' }, lastError(f)));
    // The whole row opens the failure, not only its link: easier on a phone.
    row.addEventListener('click', (ev) => {
      if (!ev.target.closest('a')) location.hash = link;
    });
    return row;
  });
  return h('table', { class: 'failures', id: 'failures' }, h('thead', null, head), h('tbody', null, rows));
}

function lastError(f) {
  let e = text(f.lastError).replace(/\s+/g, ' ').trim();
  const code = Number(f.lastStatusCode) || 0;
  if (code && !e.includes(String(code))) e = `HTTP ${code}: ${e}`;
  if (e.length > 160) e = `${e.slice(0, 159)}…`;
  return e || '—';
}

// ---- one failure

async function showFailure(id) {
  const mine = ++ticket;
  show(main, backLink(), h('p', { class: 'loading' }, 'Loading…'));
  let f;
  try {
    f = await call('GET', failurePath(id));
  } catch (err) {
    if (mine !== ticket || refused(err)) return;
    show(main, backLink(), h('p', { class: 'error', role: 'alert' }, problem(err)));
    return;
  }
  if (mine !== ticket) return;
  renderFailure(f, null);
}

// backLink returns to the list as it was left: same filters, same page.
function backLink() {
  let hash = '#/failures';
  if (list.key) {
    const [filters, top] = JSON.parse(list.key);
    hash = listHash(filters, top);
  }
  return h('p', { class: 'back' }, h('a', { href: hash, id: 'back' }, '← Failures'));
}

// renderFailure shows f; notice, when set, is the outcome of the action just taken.
function renderFailure(f, notice) {
  const fields = [
    ['Status', statusBadge(f.status)],
    ['Kind', text(f.kind)],
    ['Consumer', text(f.consumer)],
    ['Route', text(f.route)],
    ['Table', text(f.table)],
    ['Message', text(f.message)],
    ['Record id', text(f.recordId)],
    ['Event id', text(f.eventId)],
    ['Correlation id', text(f.correlationId)],
    ['Service Bus message id', text(f.messageId)],
    ['Event time', timeCell(f.occurredAt)],
    ['Attempts', num(f.attempts)],
    ['First failed', timeCell(f.firstFailedAt)],
    ['Last failed', timeCell(f.lastFailedAt)],
    ['Last HTTP status', f.lastStatusCode ? String(f.lastStatusCode) : ''],
    ['Being replayed by', f.status === 'replaying' ? actedBy(f.claimedBy, f.claimedAt) : ''],
    ['Last changed by', actedBy(f.updatedBy, f.updatedAt)],
    ['Last error', text(f.lastError) ? h('span', { class: 'pre' }, text(f.lastError)) : '', 'wide'],
    ['Discard reason', text(f.reason) ? h('span', { class: 'pre' }, text(f.reason)) : '', 'wide'],
    ['Failure id', h('code', null, text(f.id)), 'wide'],
  ].filter(([, v]) => v !== '' && v != null);

  const status = text(f.status);
  const actionable = status === 'pending' || status === 'replaying';
  show(main,
    backLink(),
    h('h1', null, [text(f.message), text(f.table)].filter(Boolean).join(' ') || 'Failure', ' → ', text(f.consumer) || 'routing'),
    notice,
    session.operator && actionable ? actions(f) : null,
    h('section', { class: 'card' },
      h('h2', null, 'Details'),
      h('dl', { class: 'fields', id: 'fields' }, fields.map(([k, v, wide]) => [h('dt', { class: wide }, k), h('dd', { class: wide }, v)]))),
    history(f),
    tries(f),
    payloadSection(f));
}

// tries shows every attempt at the consumer the store kept for f, oldest first, across its
// failed deliveries and replays.
function tries(f) {
  const list = (Array.isArray(f.tries) ? f.tries : []).filter((a) => a && typeof a === 'object');
  if (list.length === 0) return null;
  return h('section', { class: 'card' },
    h('h2', null, 'Attempts'),
    Number(f.attempts) > list.length ? h('p', { class: 'page-info' }, `${num(Number(f.attempts))} attempts; the last ${num(list.length)} kept`) : null,
    attemptTable(list, 'tries'));
}

// attemptTable is a table of tries, oldest first: when each started, its HTTP status (none for
// a success or a try that got no answer), how long it took, and its error.
function attemptTable(list, id) {
  return h('table', { class: 'history attempts', id },
    h('thead', null, h('tr', null, ['#', 'When', 'Status', 'Took', 'Error'].map((k) => h('th', { scope: 'col' }, k)))),
    h('tbody', null, list.map((a, i) => h('tr', null,
      h('td', { 'data-label': '#', class: 'num' }, String(i + 1)),
      h('td', { 'data-label': 'When' }, timeCell(a.at) || '—'),
      h('td', { 'data-label': 'HTTP status', class: 'num' }, Number(a.statusCode) ? String(Number(a.statusCode)) : '—'),
      h('td', { 'data-label': 'Duration', class: 'num' }, duration(a.duration)),
      h('td', { 'data-label': 'Error', class: 'pre' }, text(a.error) || (Number(a.statusCode) ? '—' : 'ok'))))));
}

function timeCell(iso) {
  const d = validTime(iso);
  if (!d) return '';
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, when(iso));
}

function actedBy(by, at) {
  const name = text(by);
  const t = when(at);
  if (!name && !t) return '';
  return [t, name ? `by ${name}` : ''].filter(Boolean).join(' ');
}

// history shows the failure's changes of status, oldest first, as the API gives them: a list of
// {at, action, status, by, detail}. Fields the page does not know get a column of their own.
function history(f) {
  const entries = Array.isArray(f.history) ? f.history : [];
  if (entries.length === 0) return null;
  const labels = { at: 'When', action: 'What', status: 'Status', by: 'Who', detail: 'Detail', reason: 'Reason', error: 'Error' };
  const seen = new Set();
  for (const e of entries) if (e && typeof e === 'object') for (const k of Object.keys(e)) seen.add(k);
  const known = Object.keys(labels);
  const cols = [...known.filter((k) => seen.has(k)), ...[...seen].filter((k) => !known.includes(k))];
  const cell = (k, v) => {
    if (k === 'status') return statusBadge(v);
    if ((k === 'at' || k.endsWith('At')) && validTime(v)) return timeCell(v);
    return text(v);
  };
  return h('section', { class: 'card' },
    h('h2', null, 'Status history'),
    h('table', { class: 'history', id: 'history' },
      h('thead', null, h('tr', null, cols.map((k) => h('th', { scope: 'col' }, labels[k] || k)))),
      h('tbody', null, entries.map((e) => h('tr', null,
        cols.map((k) => h('td', { 'data-label': labels[k] || k, class: k === 'detail' ? 'pre' : null }, cell(k, e && e[k]))))))));
}

function payloadSection(f) {
  const size = Number(f.payloadSize) || 0;
  let note = f.kind === 'poison' || f.payloadError ? 'the text as received' : 'the normalized event';
  let body;
  if (typeof f.payload === 'string') {
    if (f.payloadEncoding === 'base64') {
      note = 'not UTF-8 text, shown in base64';
      body = f.payload;
    } else {
      body = prettyJSON(f.payload);
    }
  } else {
    body = f.payload == null ? '(no payload)' : JSON.stringify(f.payload, null, 2);
  }
  const pre = h('pre', { class: 'payload', id: 'payload' }, body);
  const copy = h('button', { type: 'button', class: 'secondary small', id: 'copy' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(body);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Copy failed: select the text instead';
    }
  });
  return h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', null, 'Payload'), copy),
    h('p', { class: 'muted' }, `${num(size)} bytes as received; shown here as ${note}.`),
    f.payloadError ? h('p', { class: 'error' }, text(f.payloadError)) : null,
    f.payloadNote ? h('p', { class: 'muted', id: 'payload-note' }, text(f.payloadNote)) : null,
    pre);
}

// prettyJSON indents text that is JSON and leaves any other text as it is.
function prettyJSON(s) {
  try {
    return JSON.stringify(JSON.parse(s), null, 2);
  } catch {
    return s;
  }
}

function actions(f) {
  const out = h('div', { class: 'outcome', role: 'status', id: 'outcome' });
  const replay = h('button', { type: 'button', id: 'replay' }, 'Replay now');
  replay.addEventListener('click', async () => {
    busy(true);
    show(out, 'Replaying…');
    try {
      const res = await call('POST', failurePath(f.id, 'replay'));
      await reloadWith(f.id, replayNotice(res));
    } catch (err) {
      if (refused(err)) return;
      busy(false);
      actionFailed(err);
    }
  });

  const reason = h('textarea', { id: 'reason', name: 'reason', rows: 2, maxlength: 1024, required: true,
    placeholder: 'Why is it given up? e.g. the customer re-sent the order by hand' });
  const discard = h('button', { type: 'submit', class: 'danger', id: 'discard' }, 'Discard');
  const form = h('form', { class: 'discard', id: 'discard-form' },
    h('label', { for: 'reason' }, 'Discard, with a reason'), reason, discard);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!reason.value.trim()) {
      reason.focus();
      return;
    }
    busy(true);
    show(out, 'Discarding…');
    try {
      await call('POST', failurePath(f.id, 'discard'), { body: { reason: reason.value.trim() } });
      await reloadWith(f.id, h('p', { class: 'notice ok', role: 'status', id: 'notice' }, 'Discarded. It stays listed, with your reason, and is not replayed.'));
    } catch (err) {
      if (refused(err)) return;
      busy(false);
      actionFailed(err);
    }
  });

  // One action at a time: a replay and a discard of the same failure would race.
  function busy(on) {
    replay.disabled = on;
    discard.disabled = on;
  }

  // actionFailed shows why an action did not happen; refused by role, the actions go away.
  function actionFailed(err) {
    const why = h('p', { class: 'error', role: 'alert', id: 'action-error' }, err.status === 403 ? notAllowed(err) : problem(err));
    if (err.status === 403) renderFailure(f, why);
    else show(out, why);
  }

  return h('section', { class: 'card actions-card' },
    h('h2', null, 'Actions'),
    h('div', { class: 'action-row' },
      h('div', null, replay, h('p', { class: 'muted' }, 'Delivers it to the consumer again, now, with the route as it is today.')),
      form),
    out);
}

function replayNotice(res) {
  if (res.result === 'delivered') {
    const d = res.dispatch;
    const routed = d ? ` Routed again: matched ${names(d.matched)}; delivered to ${names(d.delivered)}; failed ${names(d.failed)} (kept as new failures).` : '';
    return h('p', { class: 'notice ok', role: 'status', id: 'notice' }, `Delivered.${routed}`);
  }
  return h('p', { class: 'notice bad', role: 'status', id: 'notice' }, `Failed again: ${text(res.error) || 'no error given'}`);
}

function names(values) {
  return Array.isArray(values) && values.length ? values.map(text).join(', ') : 'none';
}

async function reloadWith(id, notice) {
  const mine = ++ticket;
  let f;
  try {
    f = await call('GET', failurePath(id));
  } catch (err) {
    if (mine !== ticket || refused(err)) return;
    show(main, backLink(), notice, h('p', { class: 'error', role: 'alert' }, problem(err)));
    return;
  }
  if (mine === ticket) renderFailure(f, notice);
}

// ---- delivery history

// The lookups of GET /api/history, in the order the form shows them. The API says which
// combinations it takes (event; table and record; correlation; consumer with a range); the
// page sends what was typed and shows the API's refusal as it is.
const historyNames = ['event', 'table', 'record', 'correlation', 'consumer', 'since', 'until', 'top'];
const historyLookups = ['event', 'table', 'record', 'correlation', 'consumer'];
const historyTops = [50, 200, 1000];

function historyHash(values) {
  const q = new URLSearchParams();
  for (const name of historyNames) if (values[name]) q.set(name, values[name]);
  const s = q.toString();
  return s ? `#/history?${s}` : '#/history';
}

async function showHistory(params) {
  const values = {};
  for (const name of historyNames) values[name] = (params.get(name) || '').trim();
  if (!historyTops.includes(Number(values.top))) values.top = '';
  const results = h('div', { class: 'results', id: 'history-results' });
  show(main,
    h('h1', null, 'Delivery history'),
    h('p', { class: 'muted' }, 'Every delivery outcome the journal kept: look one up by event id, by record (table and id), by correlation id, or by consumer over a range of days (UTC).'),
    historyForm(values),
    results);
  if (!historyLookups.some((name) => values[name])) {
    show(results, h('p', { class: 'empty' }, 'Fill in one lookup above.'));
    return;
  }
  const mine = ++ticket;
  show(results, h('p', { class: 'loading' }, 'Loading…'));
  let answer;
  try {
    answer = await call('GET', 'history', { query: values });
  } catch (err) {
    if (mine !== ticket || refused(err)) return;
    show(results, h('p', { class: 'error', role: 'alert', id: 'history-error' }, problem(err)));
    return;
  }
  if (mine !== ticket) return;
  const items = (Array.isArray(answer.items) ? answer.items : []).filter((e) => e && typeof e === 'object');
  if (items.length === 0) {
    show(results, h('p', { class: 'empty', id: 'history-empty' }, 'No outcomes found (ids and names are exact; the journal keeps outcomes for its retention only).'));
    return;
  }
  // Newest first, as the API answers; sorted here too so that the page does not depend on it.
  const at = (e) => (validTime(e.at) || new Date(0)).getTime();
  items.sort((a, b) => at(b) - at(a));
  show(results,
    h('p', { class: 'page-info', id: 'history-count' }, `${num(items.length)} outcome${items.length === 1 ? '' : 's'}, newest first`),
    outcomeTable(items));
}

function historyForm(values) {
  const textField = (name, label, placeholder) => h('div', { class: 'field' },
    h('label', { for: `h-${name}` }, label),
    h('input', { id: `h-${name}`, name, value: values[name], placeholder, autocomplete: 'off', spellcheck: 'false' }));
  const dateField = (name, label) => h('div', { class: 'field' },
    h('label', { for: `h-${name}` }, label),
    h('input', { id: `h-${name}`, name, type: 'date', value: /^\d{4}-\d{2}-\d{2}$/.test(values[name]) ? values[name] : '' }));
  const size = h('select', { id: 'h-top', name: 'top' },
    h('option', { value: '' }, 'up to 200'),
    historyTops.filter((n) => n !== 200).map((n) => h('option', { value: n }, `up to ${num(n)}`)));
  size.value = values.top;
  const form = h('form', { class: 'filters', id: 'history-form' },
    textField('event', 'Event id', 'the Dataverse message id'),
    textField('table', 'Record table', 'e.g. account'),
    textField('record', 'Record id', 'with the table'),
    textField('correlation', 'Correlation id', ''),
    textField('consumer', 'Consumer', 'with a range of days'),
    dateField('since', 'Since (UTC day)'),
    dateField('until', 'Until (UTC day, included)'),
    h('div', { class: 'field' }, h('label', { for: 'h-top' }, 'Show'), size),
    h('div', { class: 'field actions' },
      h('button', { type: 'submit', id: 'history-lookup' }, 'Look up'),
      h('button', { type: 'button', class: 'secondary', id: 'history-clear', onclick: () => go('#/history') }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const next = {};
    for (const name of historyNames) next[name] = String(data.get(name) || '').trim();
    go(historyHash(next));
  });
  return form;
}

const knownOutcome = new Set(['delivered', 'failed', 'breaker-open', 'paused', 'replayed', 'discarded', 'test-delivered', 'test-failed', 'reread-failed']);

function outcomeBadge(outcome) {
  const o = text(outcome);
  return h('span', { class: `status outcome-${knownOutcome.has(o) ? o : 'other'}` }, o || 'unknown');
}

// duration is a Go time.Duration from the API (nanoseconds) for reading.
function duration(ns) {
  const n = Number(ns);
  if (!Number.isFinite(n) || n <= 0) return '—';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} s`;
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} ms`;
}

function outcomeTable(items) {
  const head = h('tr', null,
    h('th', { scope: 'col' }, 'Time', h('small', null, timeZone())),
    h('th', { scope: 'col' }, 'Outcome'),
    h('th', { scope: 'col' }, 'Consumer'),
    h('th', { scope: 'col' }, 'Route'),
    h('th', { scope: 'col' }, 'Event'),
    h('th', { scope: 'col', class: 'num' }, 'Duration'),
    h('th', { scope: 'col', class: 'num' }, 'HTTP status'),
    h('th', { scope: 'col' }, 'Error'),
    h('th', { scope: 'col' }, 'Attempts'));
  const rows = items.map((e) => {
    const failure = text(e.failureId);
    // Which path delivered it: change tracking says so (source "changes"), the plugin step not.
    const message = text(e.source) ? `${text(e.message)} (${text(e.source)})` : text(e.message);
    const event = [message, text(e.table), text(e.recordId)].filter(Boolean).join(' · ');
    return h('tr', { 'data-event': text(e.eventId), 'data-consumer': text(e.consumer) },
      h('td', { 'data-label': 'Time' }, timeCell(e.at) || '—'),
      h('td', { 'data-label': 'Outcome' }, outcomeBadge(e.outcome),
        failure ? h('a', { class: 'kind', href: `#/failures/${encodeURIComponent(failure)}` }, 'the kept failure') : null),
      h('td', { 'data-label': 'Consumer' }, text(e.consumer) || '—'),
      h('td', { 'data-label': 'Route' }, text(e.route) || '—'),
      // One child per cell: on a phone a cell is a row of its label and its value.
      h('td', { 'data-label': 'Event' }, h('div', null, event || '—',
        h('small', null, text(e.eventId)),
        text(e.correlationId) ? h('small', null, `correlation ${text(e.correlationId)}`) : null)),
      h('td', { 'data-label': 'Duration', class: 'num' }, duration(e.duration)),
      h('td', { 'data-label': 'HTTP status', class: 'num' }, Number(e.statusCode) ? String(Number(e.statusCode)) : '—'),
      h('td', { 'data-label': 'Error', class: 'error-text' }, text(e.error) || '—'),
      h('td', { 'data-label': 'Attempts' }, attemptLines(e)));
  });
  return h('table', { class: 'failures outcomes', id: 'outcomes' }, h('thead', null, head), h('tbody', null, rows));
}

// attemptLines is the outcome's tries as a table, oldest first (see attemptTable).
function attemptLines(e) {
  const attempts = (Array.isArray(e.attempts) ? e.attempts : []).filter((a) => a && typeof a === 'object');
  const count = Math.max(Number(e.attemptCount) || 0, attempts.length);
  if (attempts.length === 0) return count ? `${num(count)} ${count === 1 ? 'try' : 'tries'} (only the count is kept)` : '—';
  return h('div', null,
    count > attempts.length ? h('small', null, `${num(count)} tries; the last ${num(attempts.length)} kept`) : null,
    attemptTable(attempts, null));
}

// ---- consumers

// showConsumers lists every consumer's breaker and pause, with the operator's actions on each.
// notice, when set, is the outcome of the action just taken.
async function showConsumers(notice) {
  const mine = ++ticket;
  const results = h('div', { class: 'results', id: 'consumers-results' }, h('p', { class: 'loading' }, 'Loading…'));
  show(main,
    h('h1', null, 'Consumers'),
    h('p', { class: 'muted' }, 'A paused consumer is sent nothing: its deliveries are kept as failures of kind paused, to replay once it is resumed. The state shown is this instance\'s; the others follow within a second or so.'),
    notice || null,
    results);
  let answer;
  try {
    answer = await call('GET', 'consumers');
  } catch (err) {
    if (mine !== ticket || refused(err)) return;
    show(results, h('p', { class: 'error', role: 'alert', id: 'consumers-error' }, problem(err)));
    return;
  }
  if (mine !== ticket) return;
  const items = (Array.isArray(answer.items) ? answer.items : []).filter((c) => c && typeof c === 'object');
  if (items.length === 0) {
    show(results, h('p', { class: 'empty', id: 'consumers-empty' }, 'No consumers are configured.'));
    return;
  }
  show(results,
    session.operator ? null : h('p', { class: 'muted', id: 'consumers-reader' }, 'Pausing, resuming, resetting a breaker and sending a test event need the operator role.'),
    consumerTable(items));
}

function consumerTable(items) {
  const head = h('tr', null,
    h('th', { scope: 'col' }, 'Consumer'),
    h('th', { scope: 'col' }, 'Breaker'),
    h('th', { scope: 'col', class: 'num' }, 'In the window'),
    h('th', { scope: 'col', class: 'num' }, 'Opened'),
    h('th', { scope: 'col' }, 'Paused'),
    session.operator ? h('th', { scope: 'col' }, 'Actions') : null);
  const rows = items.map((c) => {
    const name = text(c.consumer);
    const p = c.paused && typeof c.paused === 'object' ? c.paused : null;
    const state = text(c.state);
    return h('tr', { 'data-consumer': name, 'data-paused': p ? 'true' : 'false', 'data-state': state },
      h('td', { 'data-label': 'Consumer' }, name),
      h('td', { 'data-label': 'Breaker', class: 'breaker-cell' },
        h('span', { class: `status breaker-${['closed', 'open', 'half-open'].includes(state) ? state : 'other'}` }, state || 'unknown'),
        c.shared ? null : h('small', null, 'this instance only')),
      h('td', { 'data-label': 'In the window', class: 'num' }, `${num(Number(c.successes) || 0)} ok · ${num(Number(c.failures) || 0)} failed`),
      h('td', { 'data-label': 'Opened', class: 'num' }, num(Number(c.opened) || 0)),
      h('td', { 'data-label': 'Paused', class: 'paused-cell' }, p
        ? h('div', null, h('span', { class: 'status status-paused' }, 'paused'), h('small', null, actedBy(p.by, p.at)),
          text(p.reason) ? h('small', { class: 'reason' }, text(p.reason)) : null)
        : '—'),
      session.operator ? h('td', { 'data-label': 'Actions' }, consumerActions(name, p)) : null);
  });
  return h('table', { class: 'failures consumers', id: 'consumers' }, h('thead', null, head), h('tbody', null, rows));
}

// consumerActions are one consumer's buttons: Pause (with an optional reason) or Resume,
// Reset breaker, Send test event. Each answer reloads the list with a notice.
function consumerActions(name, paused) {
  const path = (action) => `consumers/${encodeURIComponent(name)}/${action}`;
  const buttons = [];
  const run = async (label, action, body, describe) => {
    for (const b of buttons) b.disabled = true;
    try {
      const res = await call('POST', path(action), body === undefined ? {} : { body });
      await showConsumers(describe(res));
    } catch (err) {
      if (refused(err)) return;
      const why = err instanceof APIError && err.status === 403 ? notAllowed(err) : problem(err);
      await showConsumers(h('p', { class: 'error', role: 'alert', id: 'consumer-error' }, `${label} ${name}: ${why}`));
    }
  };
  const notice = (ok, msg) => h('p', { class: `notice ${ok ? 'ok' : 'bad'}`, role: 'status', id: 'consumer-notice' }, msg);
  const out = h('div', { class: 'consumer-actions' });
  if (paused) {
    const resume = h('button', { type: 'button', class: 'resume' }, 'Resume');
    resume.addEventListener('click', () => run('Resume', 'resume', undefined, () =>
      notice(true, `${name} resumed. Replay what was held: Failures, kind paused, Replay matching…`)));
    buttons.push(resume);
    out.append(resume);
  } else {
    const reason = h('input', { type: 'text', class: 'pause-reason', name: 'reason', maxlength: 1024, placeholder: 'reason (optional)', 'aria-label': `Why pause ${name}` });
    const pause = h('button', { type: 'button', class: 'pause secondary' }, 'Pause');
    pause.addEventListener('click', () => run('Pause', 'pause', { reason: reason.value.trim() }, (res) =>
      notice(true, res.changed ? `${name} paused: nothing is sent to it; its deliveries are kept as paused failures.` : `${name} was already paused.`)));
    buttons.push(pause);
    out.append(reason, pause);
  }
  const reset = h('button', { type: 'button', class: 'reset secondary' }, 'Reset breaker');
  reset.addEventListener('click', () => run('Reset', 'reset', undefined, (res) =>
    notice(true, res.changed ? `${name}'s breaker closed (it was ${text(res.was)}).` : `${name}'s breaker was already closed; its counts are cleared.`)));
  const test = h('button', { type: 'button', class: 'test secondary' }, 'Send test event');
  test.addEventListener('click', () => run('Test', 'test', undefined, (res) => {
    const ms = `${Math.round(Number(res.durationMs) || 0)} ms`;
    if (res.delivered) return notice(true, `Test event ${text(res.eventId)} delivered to ${name} in ${ms}.`);
    const status = Number(res.statusCode) ? ` (HTTP ${Number(res.statusCode)})` : '';
    return notice(false, `Test event ${text(res.eventId)} not delivered to ${name} after ${ms}${status}: ${text(res.error) || 'no error given'}`);
  }));
  buttons.push(reset, test);
  out.append(reset, test);
  return out;
}

// ---- bulk replay

function bulkButton(filters) {
  const pendingOnly = filters.status === '' || filters.status === 'pending';
  const b = h('button', { type: 'button', id: 'bulk-open', class: 'secondary', disabled: !pendingOnly,
    title: pendingOnly ? 'Replay the pending failures these filters match' : 'Bulk replay handles pending failures only' },
  'Replay matching…');
  b.addEventListener('click', () => openBulk(filters));
  return b;
}

function describe(filters) {
  const parts = [];
  if (filters.consumer) parts.push(`consumer ${filters.consumer}`);
  if (filters.table) parts.push(`table ${filters.table}`);
  if (filters.kind) parts.push(`kind ${filters.kind}`);
  if (filters.from) parts.push(`from ${when(filters.from)}`);
  if (filters.to) parts.push(`until ${when(filters.to)}`);
  return parts;
}

// openBulk replays the pending failures filters match: a dry run counts them, then each request
// replays the next chunk from where the previous one stopped (its continuation), so a failure
// that fails again is not met twice in one run, and the bar has a total to move towards.
function openBulk(filters) {
  const base = { consumer: filters.consumer, table: filters.table, kind: filters.kind, from: filters.from, to: filters.to, status: 'pending' };
  const parts = describe(filters);
  // Without a consumer or a time range the API replays only when told "all": a box to tick.
  const wide = !(filters.consumer || '').trim() && !filters.from && !filters.to;
  const allBox = h('input', { type: 'checkbox', id: 'bulk-all' });
  const max = h('input', { type: 'number', id: 'bulk-max', min: 1, max: maxReplayMax, value: defaultReplayMax, required: true });
  const dry = h('button', { type: 'button', id: 'bulk-dry' }, 'Dry run');
  const close = h('button', { type: 'button', class: 'secondary', id: 'bulk-close' }, 'Close');
  const result = h('div', { class: 'bulk-result', id: 'bulk-result', role: 'status' });
  let running = false;
  let stopAsked = false;

  const limit = () => {
    const n = Math.floor(Number(max.value));
    return n >= 1 && n <= maxReplayMax ? n : 0;
  };

  max.addEventListener('input', () => show(result)); // a new max needs a new dry run
  close.addEventListener('click', () => bulkDialog.close());
  bulkDialog.oncancel = (ev) => { if (running) ev.preventDefault(); };
  // Closed, the list shows what the replay left (unless the user went to a failure or out).
  bulkDialog.onclose = () => {
    const onList = location.hash === '' || location.hash === '#/failures' || location.hash.startsWith('#/failures?');
    if (session.me && onList) go(location.hash || '#/failures');
  };

  allBox.addEventListener('change', () => show(result)); // what the dry run counted changed
  dry.addEventListener('click', async () => {
    const n = limit();
    if (!n) {
      show(result, h('p', { class: 'error' }, `Max must be a whole number from 1 to ${num(maxReplayMax)}.`));
      return;
    }
    if (wide && !allBox.checked) {
      show(result, h('p', { class: 'error', id: 'bulk-wide' }, 'Pick a consumer or a time range in the filters first, or tick the box to replay every consumer\'s pending failures.'));
      return;
    }
    base.all = wide;
    dry.disabled = true;
    show(result, h('p', null, 'Counting…'));
    let count;
    try {
      count = await call('POST', 'failures/replay', { body: { ...base, max: n, dryRun: true } });
    } catch (err) {
      dry.disabled = false;
      if (refused(err)) { bulkDialog.close(); return; }
      show(result, h('p', { class: 'error', role: 'alert' }, err.status === 403 ? notAllowed(err) : problem(err)));
      return;
    }
    dry.disabled = false;
    const matched = Number(count.matched) || 0;
    if (matched === 0) {
      show(result, h('p', { id: 'bulk-count' }, 'Dry run: no pending failures match. Nothing to replay.'));
      return;
    }
    const beyond = count.continuation ? ` (more match beyond the max of ${num(n)})` : '';
    const confirm = h('button', { type: 'button', id: 'bulk-go', class: 'danger' }, `Replay ${num(matched)}`);
    confirm.addEventListener('click', () => run(n, matched));
    show(result,
      h('p', { id: 'bulk-count' }, `Dry run: ${num(matched)} pending failures would be replayed${beyond}. Nothing was sent.`),
      confirm);
  });

  async function run(n, total) {
    running = true;
    stopAsked = false;
    dry.disabled = true;
    max.disabled = true;
    close.disabled = true;
    const bar = h('progress', { id: 'bulk-progress', max: total, value: 0 });
    const line = h('p', { id: 'bulk-line', class: 'counts' }, `replaying 0/${num(total)}`);
    const stop = h('button', { type: 'button', class: 'secondary', id: 'bulk-stop' }, 'Stop');
    stop.addEventListener('click', () => {
      stopAsked = true;
      stop.disabled = true;
      stop.textContent = 'Stopping after this chunk…';
    });
    show(result, bar, line, stop);

    const sum = { matched: 0, delivered: 0, failed: 0, skipped: 0, errors: [] };
    let reason = '';
    let problemText = '';
    let continuation = '';
    while (sum.matched < n && !stopAsked) {
      let chunk;
      try {
        chunk = await call('POST', 'failures/replay', {
          body: { ...base, max: Math.min(replayChunk, n - sum.matched), continuation, dryRun: false },
        });
      } catch (err) {
        if (err instanceof APIError && err.status === 401) { running = false; bulkDialog.close(); refused(err); return; }
        problemText = err instanceof APIError && err.status === 403 ? notAllowed(err) : problem(err);
        break;
      }
      sum.matched += Number(chunk.matched) || 0;
      sum.delivered += Number(chunk.delivered) || 0;
      sum.failed += Number(chunk.failed) || 0;
      sum.skipped += Number(chunk.skipped) || 0;
      for (const e of Array.isArray(chunk.errors) ? chunk.errors : []) {
        if (sum.errors.length < 20) sum.errors.push(e);
      }
      const done = sum.delivered + sum.failed + sum.skipped;
      // Failures recorded meanwhile can change what matches: the total only ever grows.
      total = Math.max(total, done);
      bar.max = total;
      bar.value = done;
      line.textContent = `replaying ${num(done)}/${num(total)} · delivered ${num(sum.delivered)} · failed ${num(sum.failed)} · skipped ${num(sum.skipped)}`;
      if (chunk.stoppedEarly) {
        reason = text(chunk.reason);
        break;
      }
      continuation = text(chunk.continuation);
      if (!continuation || !chunk.matched) break;
    }
    running = false;
    close.disabled = false;
    max.disabled = false;
    dry.disabled = false;
    const done = sum.delivered + sum.failed + sum.skipped;
    bar.max = Math.max(done, 1);
    bar.value = done;
    show(result,
      bar,
      h('p', { id: 'bulk-summary', class: 'counts' },
        `${stopAsked ? 'Stopped' : 'Done'}: matched ${num(sum.matched)} · delivered ${num(sum.delivered)} · failed ${num(sum.failed)} · skipped ${num(sum.skipped)}`),
      reason ? h('p', { class: 'notice bad', id: 'bulk-reason' }, `Stopped early: ${reason}`) : null,
      problemText ? h('p', { class: 'error', role: 'alert' }, problemText) : null,
      sum.errors.length ? h('ul', { class: 'bulk-errors', id: 'bulk-errors' },
        sum.errors.map((e) => h('li', null, h('a', { href: `#/failures/${encodeURIComponent(text(e && e.id))}`, onclick: () => bulkDialog.close() }, text(e && e.id)), ': ', text(e && e.error)))) : null);
  }

  show(bulkDialog,
    h('h2', { id: 'bulk-title' }, 'Replay pending failures'),
    h('p', null, parts.length ? `Pending failures with ${parts.join(', ')}.` : 'Every pending failure: no filter is set.'),
    h('div', { class: 'field inline' }, h('label', { for: 'bulk-max' }, 'At most'), max),
    wide ? h('div', { class: 'field inline' }, allBox, h('label', { for: 'bulk-all' }, 'Yes, every consumer, at any time')) : null,
    h('p', { class: 'muted' }, 'A dry run counts them first; nothing is sent until you confirm.'),
    h('div', { class: 'dialog-buttons' }, dry, close),
    result);
  bulkDialog.showModal();
}

// ---- change tracking

// showChanges lists the tables read by change tracking (GET /api/changes): the last token, the
// last stored page, a read between two pages, full reads; an operator may reset a table, which
// makes its next read a full read.
async function showChanges() {
  const results = h('div', { class: 'results', id: 'changes-results' });
  show(main,
    h('h1', null, 'Change tracking'),
    h('p', { class: 'muted' }, 'The tables dvrouter reads by Dataverse change tracking (routes with source: changes or both).'),
    results);
  const mine = ++ticket;
  show(results, h('p', { class: 'loading' }, 'Loading…'));
  let answer;
  try {
    answer = await call('GET', 'changes');
  } catch (err) {
    if (mine !== ticket || refused(err)) return;
    show(results, h('p', { class: 'error', role: 'alert', id: 'changes-error' }, problem(err)));
    return;
  }
  if (mine !== ticket) return;
  const tables = (Array.isArray(answer.tables) ? answer.tables : []).filter((t) => t && typeof t === 'object');
  const about = h('p', { class: 'page-info' }, `Environment ${text(answer.environment) || '—'}, schedule ${text(answer.schedule) || '—'}, stale after ${text(answer.staleAfter) || '—'}`);
  if (tables.length === 0) {
    show(results, about, h('p', { class: 'empty', id: 'changes-empty' }, 'No table is read by change tracking.'));
    return;
  }
  const head = h('tr', null,
    ['Table', 'Last token', 'Last page', 'Pending pages', 'Changed', 'Deleted', 'Full reads', 'State', ''].map((c) => h('th', { scope: 'col' }, c)));
  const rows = tables.map((t) => {
    const state = !t.configured ? 'no route reads it' : t.stale ? 'stale' : 'ok';
    const reset = session.operator && t.configured ? h('button', {
      type: 'button', class: 'secondary', 'data-table': text(t.table),
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          await call('POST', 'changes/reset', { body: { table: text(t.table) } });
          showChanges();
        } catch (err) {
          if (refused(err)) return;
          ev.target.disabled = false;
          show(results, h('p', { class: 'error', role: 'alert', id: 'changes-error' }, err.status === 403 ? notAllowed(err) : problem(err)));
        }
      },
    }, 'Reset: read it all again') : null;
    return h('tr', { 'data-table': text(t.table) },
      h('td', { 'data-label': 'Table' }, text(t.table)),
      h('td', { 'data-label': 'Last token' }, timeCell(t.tokenAt) || '—'),
      h('td', { 'data-label': 'Last page' }, timeCell(t.lastRunAt) || '—'),
      h('td', { 'data-label': 'Pending pages' }, t.pending ? `yes, ${num(t.pagesRead)} read` : '—'),
      h('td', { 'data-label': 'Changed', class: 'num' }, num(t.changed)),
      h('td', { 'data-label': 'Deleted', class: 'num' }, num(t.deleted)),
      h('td', { 'data-label': 'Full reads', class: 'num' }, num(t.fullReads), text(t.fullReadWhy) ? h('small', null, text(t.fullReadWhy)) : null),
      h('td', { 'data-label': 'State' }, h('span', { class: `status ${state === 'ok' ? 'status-replayed' : 'status-pending'}` }, state),
        text(t.readingBy) ? h('small', null, `reading: ${text(t.readingBy)}`) : null),
      h('td', null, reset));
  });
  show(results, about, h('table', { class: 'failures', id: 'changes' }, h('thead', null, head), h('tbody', null, rows)));
}

// ---- start

async function start() {
  window.addEventListener('hashchange', route);
  const key = storedKey();
  try {
    signedIn(await identify(key), key);
  } catch (err) {
    // No key yet, and no App Service sign-in: the form is the first thing to see, not an error.
    const quiet = !key && err instanceof APIError && err.status === 401;
    keepKey('');
    showSignIn(quiet ? '' : (err instanceof APIError && err.status === 401 ? 'Your key is no longer accepted: sign in again.' : problem(err)));
    return;
  }
  route();
}

start();
