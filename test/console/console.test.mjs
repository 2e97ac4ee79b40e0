// Drives the support console in Debian's chromium through playwright-core. Run by
// console_test.go, which starts dvrouter, Azurite and the consumers, seeds the failures and
// passes what it seeded in CONSOLE_SEEDED. Exits non-zero on the first check that fails.
import assert from 'node:assert/strict';
import path from 'node:path';
import { launch, must, step } from './browser.mjs';

const consoleURL = must('CONSOLE_URL');
const key = must('CONSOLE_KEY');
const seeded = JSON.parse(must('CONSOLE_SEEDED'));
const shots = must('CONSOLE_SCREENSHOTS');
const actor = must('CONSOLE_ACTOR');
const readerKey = must('CONSOLE_READER_KEY');
const total = seeded.erp + seeded.ledger + seeded.crm;
// A dvrouter with GET /api/me says who a key is and which roles it has; one without gives every
// key it accepts the operator role, and the console names it "key".
const realRoles = (await fetch(new URL('../me', consoleURL), { headers: { 'x-functions-key': readerKey } })).status === 200;
const timeout = 30_000;

const context = await launch(timeout);

// Every page records what the browser refused (CSP) and what the page threw.
await context.addInitScript(() => {
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
  });
});
const pageErrors = [];

async function newPage() {
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

// phoneShot takes a screenshot at a phone's size and checks nothing is wider than the screen.
async function phoneShot(page, name) {
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(100);
  await shot(page, `${name}-375x812`);
  const wide = await page.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('pre, dialog:not([open])'))
    .slice(0, 5).map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`));
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than a 375px screen: ${wide.join(', ')}`);
  await page.setViewportSize({ width: 1280, height: 800 });
}

async function rowIds(page) {
  return page.$$eval('#failures tbody tr', (rows) => rows.map((r) => r.dataset.id));
}

async function cellTexts(page, column) {
  return page.$$eval(`#failures tbody td[data-label="${column}"]`, (cells) => cells.map((c) => c.textContent));
}

async function waitRows(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll('#failures tbody tr').length === n
    || (n === 0 && document.querySelector('.empty')), n);
}

async function waitPageInfo(page, text) {
  await page.waitForFunction((t) => (document.getElementById('page-info')?.textContent || '').startsWith(t), text);
}

async function assertNoInjection(page) {
  const got = await page.evaluate(() => ({
    pwned: window.__pwned,
    injected: document.querySelectorAll('main img, main script, dialog img, dialog script').length,
  }));
  assert.equal(got.pwned, undefined, 'a value from the API ran as script');
  assert.equal(got.injected, 0, 'a value from the API became markup');
}

try {
  const page = await newPage();

  step('the page asks for a key, and refuses a wrong one');
  await page.goto(consoleURL);
  await page.waitForSelector('#signin');
  await shot(page, 'signin-1280x800');
  await page.fill('#key', 'not-the-key-at-all-0000');
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#signin-error:not([hidden])');
  assert.match(await page.textContent('#signin-error'), /refused/);

  step('signing in with the standalone admin key lists the newest failures');
  await page.fill('#key', key);
  await page.click('#signin button[type=submit]');
  await waitRows(page, 50);
  const who = await page.textContent('#who');
  if (realRoles) assert.match(who, new RegExp(`^${actor}`), 'GET /api/me names the key');
  else assert.match(who, /^key/, 'a dvrouter without GET /api/me: the signed-in key is named "key"');
  assert.match(who, /operator/);
  const storage = await page.evaluate(() => ({ session: sessionStorage.length, local: localStorage.length, cookie: document.cookie }));
  assert.deepEqual(storage, { session: 1, local: 0, cookie: '' }, 'the key is kept in sessionStorage only');
  const page1 = await rowIds(page);
  assert.equal(page1[0], seeded.hostileId, 'newest first');
  const errors = await cellTexts(page, 'Last error');
  assert.ok(errors[0].includes('<img src=x onerror='), `the hostile error is shown as text: ${errors[0]}`);
  await assertNoInjection(page);
  await shot(page, 'list-1280x800');
  await phoneShot(page, 'list');

  step(`paging by continuation goes through all ${total} failures and back`);
  const seen = new Set(page1);
  for (let p = 2; p <= Math.ceil(total / 50); p++) {
    await page.click('#older');
    await waitPageInfo(page, `Page ${p} ·`);
    for (const id of await rowIds(page)) {
      assert.ok(!seen.has(id), `failure ${id} shown on two pages`);
      seen.add(id);
    }
  }
  assert.equal(seen.size, total, 'every failure is on exactly one page');
  assert.ok(await page.isDisabled('#older'), 'no page after the last');
  await page.click('#newer');
  await waitPageInfo(page, `Page ${Math.ceil(total / 50) - 1} ·`);
  assert.equal((await rowIds(page)).length, 50);

  step('filters: consumer, then a time range, then consumer and status');
  await page.fill('#f-consumer', 'crm');
  await page.click('#apply');
  await waitPageInfo(page, 'Page 1 ·');
  await waitRows(page, seeded.crm);
  assert.ok((await cellTexts(page, 'Consumer')).every((c) => c === 'crm'));
  assert.ok(await page.isDisabled('#older'));
  await page.fill('#f-consumer', '');
  await page.fill('#f-from', seeded.crmFrom);
  await page.fill('#f-to', seeded.crmTo);
  await page.click('#apply');
  await page.waitForFunction(() => location.hash.includes('from='));
  await waitRows(page, seeded.crm);
  assert.ok((await cellTexts(page, 'Consumer')).every((c) => c === 'crm'), 'the time range holds only crm failures');
  await page.click('#clear');
  await page.waitForFunction(() => location.hash === '#/failures');
  await page.fill('#f-consumer', 'erp');
  await page.selectOption('#f-status', 'pending');
  await page.click('#apply');
  await page.waitForFunction(() => location.hash.includes('status=pending'));
  await waitRows(page, 50);
  assert.ok((await cellTexts(page, 'Consumer')).every((c) => c === 'erp'));

  step('a failure shows its fields and its payload pretty-printed, as text');
  await page.click(`#failures tbody tr[data-id="${seeded.hostileId}"] a`);
  await page.waitForSelector('#fields');
  const fields = await page.textContent('#fields');
  assert.ok(fields.includes(seeded.hostile), 'the last error is shown as the text it is');
  for (const label of ['Consumer', 'Route', 'Attempts', 'Last HTTP status', 'Last error', 'Last changed by', 'Event time']) {
    assert.ok(fields.includes(label), `the details show ${label}`);
  }
  // Every attempt, oldest first, as a table: the hostile error is text.
  const tries = await page.$$eval('#tries tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
  assert.deepEqual(tries.map((r) => [r[0], r[2], r[3], r[4]]), [
    ['1', '503', '250 ms', 'HTTP 503: erp is down for maintenance'],
    ['2', '—', '2.00 s', 'no answer within 2s'],
    ['3', '500', '12 ms', `HTTP 500: ${seeded.hostile}`]], `the attempts table: ${JSON.stringify(tries)}`);
  assert.match(await page.textContent('#tries'), /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
  assert.match(await page.textContent('main'), /4 attempts; the last 3 kept/);
  const payload = await page.textContent('#payload');
  assert.ok(payload.includes('\n  "'), 'the payload is indented JSON');
  assert.ok(payload.includes('"table": "contact"'), 'the payload is the normalized event');
  assert.ok(payload.includes('onerror=\\"window.__pwned=1\\"'), 'the payload\'s hostile column is shown as JSON text');
  assert.ok(!payload.includes('"birthdate"'), 'a column the route excludes (personal data) is not shown');
  assert.ok((await page.textContent('#payload-note')).includes('birthdate'), 'the page says which columns are not shown');
  await assertNoInjection(page);
  await shot(page, 'detail-1280x800');
  await phoneShot(page, 'detail');

  step('replay one: delivered, and shown as replayed');
  await page.click('#replay');
  await page.waitForSelector('#notice');
  assert.match(await page.textContent('#notice'), /Delivered/);
  assert.match(await page.textContent('#fields'), /replayed/);
  assert.equal(await page.$('#replay'), null, 'a replayed failure offers no replay');
  await page.screenshot({ path: path.join(shots, 'replayed-1280-full.png'), fullPage: true });
  if (realRoles) {
    // The same dvrouter keeps each failure's history: the replay is in it, with who did it.
    const hist = await page.textContent('#history');
    assert.match(hist, /recorded/);
    assert.match(hist, new RegExp(`replayed.*${actor}`));
  }

  step('discard one, with a reason');
  await page.goto(`${consoleURL}#/failures/${encodeURIComponent(seeded.discardId)}`);
  await page.waitForSelector('#discard');
  await page.click('#discard');
  assert.equal(await page.$('#notice'), null, 'no discard without a reason');
  await page.fill('#reason', 'customer re-sent by hand in ERP');
  await page.click('#discard');
  await page.waitForSelector('#notice');
  assert.match(await page.textContent('#notice'), /Discarded/);
  const discarded = await page.textContent('#fields');
  assert.match(discarded, /discarded/);
  assert.match(discarded, /customer re-sent by hand in ERP/);
  assert.match(discarded, new RegExp(`by ${actor}`));
  await page.click('#back');
  await page.selectOption('#f-status', 'discarded');
  await page.click('#apply');
  await waitRows(page, 1);
  assert.deepEqual(await rowIds(page), [seeded.discardId]);

  step('bulk replay: a dry run counts, then chunks move the progress bar to the counts');
  await page.selectOption('#f-status', 'pending');
  await page.click('#apply');
  await waitRows(page, 50);
  await page.click('#bulk-open');
  await page.waitForSelector('dialog#bulk[open]');
  await page.click('#bulk-dry');
  await page.waitForSelector('#bulk-count');
  const pendingERP = seeded.erp - 2;
  assert.match(await page.textContent('#bulk-count'), new RegExp(`Dry run: ${pendingERP} pending failures would be replayed`));
  await phoneShot(page, 'bulk');
  // Every value the bar takes, to see that it moved through the chunks.
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver(() => {
      const bar = document.getElementById('bulk-progress');
      if (bar) window.__progress.push(`${bar.value}/${bar.max}`);
    }).observe(document.getElementById('bulk'), { subtree: true, childList: true, attributes: true, characterData: true });
  });
  await page.click('#bulk-go');
  await page.waitForFunction(() => {
    const bar = document.getElementById('bulk-progress');
    return bar && bar.value > 0 && bar.value < bar.max;
  });
  await shot(page, 'bulk-progress-1280x800');
  await page.waitForSelector('#bulk-summary', { timeout: 120_000 });
  const summary = await page.textContent('#bulk-summary');
  assert.match(summary, new RegExp(`Done: matched ${pendingERP} · delivered ${pendingERP} · failed 0 · skipped 0`));
  const progress = await page.evaluate(() => window.__progress);
  const middle = progress.filter((p) => { const [v, m] = p.split('/').map(Number); return v > 0 && v < m; });
  assert.ok(middle.length > 0, `the bar showed progress between 0 and the total: ${progress.join(' ')}`);
  await shot(page, 'bulk-1280x800');
  await page.click('#bulk-close');
  await page.waitForSelector('.empty');

  step('bulk replay without a consumer or a time range asks for a tick first');
  await page.goto(`${consoleURL}#/failures?status=pending`);
  await page.waitForSelector('#failures tbody tr');
  await page.click('#bulk-open');
  await page.waitForSelector('dialog#bulk[open]');
  await page.click('#bulk-dry');
  await page.waitForSelector('#bulk-wide');
  assert.equal(await page.$('#bulk-count'), null, 'no dry run without the tick');
  await page.check('#bulk-all');
  await page.click('#bulk-dry');
  await page.waitForSelector('#bulk-count');
  assert.match(await page.textContent('#bulk-count'), /pending failures would be replayed/);
  await page.click('#bulk-close');

  step('bulk replay of a consumer that is still down: failures counted, the rest left pending');
  await page.goto(`${consoleURL}#/failures?consumer=ledger`);
  await waitRows(page, seeded.ledger);
  await page.click('#bulk-open');
  await page.click('#bulk-dry');
  await page.waitForSelector('#bulk-count');
  assert.match(await page.textContent('#bulk-count'), new RegExp(`${seeded.ledger} pending failures would be replayed`));
  await page.click('#bulk-go');
  await page.waitForSelector('#bulk-summary', { timeout: 120_000 });
  const failedSummary = await page.textContent('#bulk-summary');
  const failed = Number(/failed (\d+)/.exec(failedSummary)[1]);
  assert.ok(failed >= 1, `some replays failed again: ${failedSummary}`);
  assert.ok(await page.$('#bulk-errors') || await page.$('#bulk-reason'), 'the failures are explained');
  await phoneShot(page, 'bulk-failed');
  await page.click('#bulk-close');

  step('the delivery history: a journaled delivery looked up by its event id');
  await page.click('#nav-history');
  await page.waitForSelector('#history-form');
  await page.fill('#h-event', seeded.historyEvent);
  await page.click('#history-lookup');
  await page.waitForFunction(() => location.hash.startsWith('#/history?event='));
  await page.waitForSelector('#outcomes > tbody > tr');
  const desk = await page.$$eval('#outcomes > tbody > tr', (rows) => rows.map((r) => ({
    event: r.dataset.event,
    cells: Object.fromEntries([...r.querySelectorAll(':scope > td')].map((td) => [td.dataset.label, td.textContent])),
  })));
  assert.equal(desk.length, 1, `one outcome for the event: ${JSON.stringify(desk)}`);
  assert.equal(desk[0].event, seeded.historyEvent);
  assert.equal(desk[0].cells.Outcome, 'delivered');
  assert.equal(desk[0].cells.Consumer, 'desk');
  assert.equal(desk[0].cells.Route, 'cases');
  assert.ok(desk[0].cells.Event.startsWith('SetState · incident'), `the event is named: ${desk[0].cells.Event}`);
  const deskTries = await page.$$eval('#outcomes > tbody > tr:first-child .attempts tbody tr',
    (rows) => rows.map((r) => Object.fromEntries([...r.querySelectorAll('td')].map((td) => [td.dataset.label, td.textContent]))));
  assert.deepEqual(deskTries.map((a) => [a['#'], a['HTTP status'], a.Error.startsWith('consumer answered 503') ? 'answered 503' : a.Error]),
    [['1', '503', 'answered 503'], ['2', '—', 'ok']], `a 503, then the delivery: ${JSON.stringify(deskTries)}`);
  assert.match(desk[0].cells.Duration, /\d (ms|s)$/);
  assert.match(desk[0].cells.Time, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  await shot(page, 'history-1280x800');
  await phoneShot(page, 'history');

  step('the delivery history: attempt lines, hostile text shown as text, newest first');
  await page.route('**/api/history?*', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ items: [
    { at: '2026-03-10T11:00:00Z', eventId: 'evt-old', consumer: 'erp', outcome: 'delivered', duration: 2_000_000 },
    { at: '2026-03-10T12:00:00Z', eventId: 'evt-new', consumer: seeded.hostile, route: 'new-contacts', outcome: 'failed',
      statusCode: 500, duration: 1_500_000_000, error: seeded.hostile, failureId: seeded.hostileId, attemptCount: 3,
      attempts: [
        { at: '2026-03-10T11:59:59Z', statusCode: 503, duration: 250_000_000, error: 'erp is down' },
        { at: '2026-03-10T12:00:00Z', statusCode: 500, duration: 12_000_000, error: seeded.hostile }] },
  ] }) }));
  await page.fill('#h-event', 'evt-stood-in');
  await page.click('#history-lookup');
  await page.waitForFunction(() => document.querySelector('#outcomes > tbody > tr')?.dataset.event === 'evt-new');
  assert.deepEqual(await page.$$eval('#outcomes > tbody > tr', (rows) => rows.map((r) => r.dataset.event)), ['evt-new', 'evt-old']);
  const lines = await page.$$eval('#outcomes > tbody > tr:first-child .attempts tbody tr', (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
  assert.deepEqual(lines, [['1', '2026-03-10 11:59:59', '503', '250 ms', 'erp is down'], ['2', '2026-03-10 12:00:00', '500', '12 ms', seeded.hostile]]);
  assert.match(await page.textContent('#outcomes > tbody > tr:first-child > td[data-label="Attempts"]'), /^3 tries; the last 2 kept/);
  assert.equal(await page.textContent('#outcomes > tbody > tr:first-child > td[data-label="Error"]'), seeded.hostile);
  assert.equal(await page.getAttribute('#outcomes > tbody > tr:first-child > td[data-label="Outcome"] a', 'href'), `#/failures/${encodeURIComponent(seeded.hostileId)}`);
  await assertNoInjection(page);
  await phoneShot(page, 'history-attempts');
  await page.unroute('**/api/history?*');

  step("the delivery history: the API's refusal is shown as it is");
  await page.goto(`${consoleURL}#/history?event=${encodeURIComponent(seeded.historyEvent)}&since=yesterday`);
  await page.waitForSelector('#history-error');
  assert.match(await page.textContent('#history-error'), /^invalid query: since: "yesterday" is neither a date/);
  await page.click('#nav-failures');
  await page.waitForSelector('#failures tbody tr, .empty');

  step('signing out forgets the key');
  await page.click('#who button');
  await page.waitForSelector('#signin');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.deepEqual(await page.evaluate(() => window.__violations), [], 'the page broke no rule of its Content-Security-Policy');
  // Trusted Types are enforced: had any code put text in as HTML, it would have thrown.
  const sink = await page.evaluate(() => {
    try {
      document.getElementById('main').innerHTML = '<b>markup</b>';
      return 'innerHTML allowed';
    } catch (err) {
      return err.name;
    }
  });
  assert.equal(sink, 'TypeError', 'the CSP makes innerHTML throw');
  await page.close();

  // The reader role is decided by the server: GET /api/me says which roles the key has, and
  // replay and discard answer 403 to a reader. Against a dvrouter without GET /api/me (every key
  // an operator) those answers are stood in for, to check what the page makes of them.
  const meAs = (body) => (r) => r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) });

  step(`a reader is offered no replay or discard (${realRoles ? 'a reader key' : 'GET /api/me stood in for'})`);
  const reader = await newPage();
  if (!realRoles) await reader.route('**/api/me', meAs({ name: 'rita', roles: ['reader'], via: 'key' }));
  await reader.goto(`${consoleURL}#/failures?consumer=ledger`);
  await reader.fill('#key', readerKey);
  await reader.click('#signin button[type=submit]');
  await waitRows(reader, seeded.ledger);
  assert.match(await reader.textContent('#who'), /rita\s*reader/);
  assert.equal(await reader.$('#bulk-open'), null, 'no bulk replay for a reader');
  await reader.click('#failures tbody tr a');
  await reader.waitForSelector('#fields');
  assert.equal(await reader.$('#replay'), null, 'no replay for a reader');
  assert.equal(await reader.$('#discard'), null, 'no discard for a reader');
  await reader.close();

  step(`a 403 on an action is explained and the actions go away (${realRoles ? "the server's 403" : 'the 403 stood in for'})`);
  const refused = await newPage();
  // The page is told it may act (as after a role was taken away while it was open).
  await refused.route('**/api/me', meAs({ name: 'rita', roles: ['reader', 'operator'], via: 'key' }));
  if (!realRoles) {
    await refused.route('**/api/failures/*/replay', (r) => r.fulfill({ status: 403, contentType: 'application/json',
      body: JSON.stringify({ error: 'forbidden', detail: 'the reader role cannot replay' }) }));
  }
  await refused.goto(`${consoleURL}#/failures?consumer=ledger`);
  await refused.fill('#key', readerKey);
  await refused.click('#signin button[type=submit]');
  await waitRows(refused, seeded.ledger);
  await refused.click('#failures tbody tr a');
  await refused.click('#replay');
  await refused.waitForSelector('#action-error');
  assert.match(await refused.textContent('#action-error'), /^Not allowed/);
  assert.equal(await refused.$('#replay'), null, 'the actions are gone');
  assert.match(await refused.textContent('#who'), /reader/);
  await refused.close();

  // Behind App Service authentication the platform signs the user in and passes who they are
  // in x-ms-client-principal; here the test plays the platform and sets that header. A dvrouter
  // that does not know App Service authentication answers GET /api/me 404: nothing to check.
  const principal = Buffer.from(JSON.stringify({
    auth_typ: 'aad', name_typ: 'name', role_typ: 'roles',
    claims: [{ typ: 'preferred_username', val: 'ada@contoso.com' }, { typ: 'name', val: 'Ada Lovelace' }, { typ: 'roles', val: 'operator' }],
  })).toString('base64');
  const asURL = must('CONSOLE_APPSERVICE_URL');
  const asMe = await fetch(new URL('../me', asURL), { headers: { 'x-ms-client-principal': principal } });
  if (asMe.status === 404) {
    step('behind App Service authentication: this dvrouter has no GET /api/me, so no App Service sign-in to check');
  } else {
    step('behind App Service authentication: no key asked, and the signed-in user is who acts');
    const ada = await newPage();
    await ada.setExtraHTTPHeaders({ 'x-ms-client-principal': principal });
    await ada.goto(`${asURL}#/failures?consumer=crm`);
    await waitRows(ada, seeded.crm);
    assert.equal(await ada.$('#signin'), null, 'no key is asked for');
    assert.match(await ada.textContent('#who'), /ada@contoso\.com\s*operator/);
    assert.equal(await ada.evaluate(() => sessionStorage.length), 0, 'nothing is kept in the tab');
    await ada.click('#failures tbody tr a');
    await ada.fill('#reason', 'account merged in CRM by hand');
    await ada.click('#discard');
    await ada.waitForSelector('#notice');
    assert.match(await ada.textContent('#fields'), /by ada@contoso\.com/);
    assert.match(await ada.textContent('#history'), /discarded.*ada@contoso\.com/);
    await ada.close();
  }

  assert.deepEqual(pageErrors, [], 'the page threw no error');
  console.log('console: every check passed');
} finally {
  await context.close();
}
