// Building the page. Every value from the API is untrusted (payloads and consumer errors come
// from outside), so text only ever goes in as text nodes and attribute values, never as markup;
// the page's Content-Security-Policy enforces Trusted Types, so an innerHTML would throw.

// h makes an element: h('a', {href: '#/x', class: 'y', onclick: fn}, 'text', child, ...).
// Children that are strings or numbers become text nodes; null, undefined and false are left out.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  }
}

// show replaces what el holds.
export function show(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// text is a value from the API as display text: strings as they are, anything else (a field
// of a type the page did not expect) as JSON.
export function text(v) {
  if (v == null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

const count = new Intl.NumberFormat();

// num formats a count for reading (1,234).
export function num(n) {
  return count.format(Number(n) || 0);
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// validTime parses an RFC 3339 time from the API; Go's zero time and garbage are null.
export function validTime(iso) {
  if (typeof iso !== 'string' || iso === '' || iso.startsWith('0001-')) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? null : d;
}

// when is a time in the browser's time zone, 2024-05-01 11:30:05; '' when there is none.
export function when(iso) {
  const d = validTime(iso);
  if (!d) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// localInput is an RFC 3339 time as a datetime-local input's value (local time, minutes).
export function localInput(iso) {
  const d = validTime(iso);
  if (!d) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// fromLocalInput turns a datetime-local value (local time) into RFC 3339 UTC for the API.
export function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

// timeZone names the browser's time zone, in which the page shows times.
export function timeZone() {
  const off = -new Date().getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(off);
  const utc = `UTC${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  const name = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return name && name !== 'UTC' ? `${name}, ${utc}` : utc;
}
