// Drives the console's Consumers view in Debian's chromium through playwright-core. Run by
// consumers_test.go, which starts dvrouter with one consumer, erp. Exits non-zero on the first
// check that fails.
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
const consoleURL = must('CONSOLE_URL');
const key = must('CONSOLE_KEY');
const actor = must('CONSOLE_ACTOR');
const readerKey = must('CONSOLE_READER_KEY');
const shots = must('CONSOLE_SCREENSHOTS');

function must(name) {
  const v = env[name];
  if (!v) throw new Error(`${name} is not set: run this through go test ./test/console`);
  return v;
}

function step(name) {
  console.log(`- ${name}`);
}

const context = await chromium.launchPersistentContext(must('BROWSER_PROFILE'), {
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
  viewport: { width: 1280, height: 800 },
  timezoneId: 'UTC',
  locale: 'en-US',
});
context.setDefaultTimeout(30_000);
const pageErrors = [];

async function signIn(k) {
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(`${consoleURL}#/consumers`);
  await page.fill('#key', k);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector('#consumers tbody tr[data-consumer="erp"]');
  return page;
}

const erpRow = '#consumers tbody tr[data-consumer="erp"]';

try {
  step('an operator sees erp, not paused, with its actions');
  const page = await signIn(key);
  assert.equal(await page.getAttribute(erpRow, 'data-paused'), 'false');
  assert.equal(await page.getAttribute(erpRow, 'data-state'), 'closed');
  assert.equal((await page.textContent(`${erpRow} .paused-cell`)).trim(), '—');

  step('pause erp with a reason: the pause is shown, with who and why');
  await page.fill(`${erpRow} .pause-reason`, 'ERP upgrade tonight');
  await page.click(`${erpRow} button.pause`);
  await page.waitForSelector(`${erpRow}[data-paused="true"]`);
  assert.match(await page.textContent('#consumer-notice'), /erp paused/);
  const pausedCell = await page.textContent(`${erpRow} .paused-cell`);
  assert.match(pausedCell, new RegExp(`by ${actor}`));
  assert.match(pausedCell, /ERP upgrade tonight/);
  await page.screenshot({ path: path.join(shots, 'consumers-paused-1280x800.png') });

  step('an event arriving while paused is kept, not sent');
  const posted = await fetch(must('CONSOLE_WEBHOOK'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: must('CONSOLE_EVENT') });
  const outcome = await posted.json();
  assert.equal(posted.status, 200, JSON.stringify(outcome));
  assert.deepEqual(outcome.failed, ['erp']);

  step('send a test event: it still goes to a paused consumer, and the result is shown');
  await page.click(`${erpRow} button.test`);
  await page.waitForSelector('#consumer-notice.ok');
  assert.match(await page.textContent('#consumer-notice'), /Test event [0-9a-f-]+ delivered to erp in \d+ ms/);
  await page.screenshot({ path: path.join(shots, 'consumers-test-1280x800.png') });

  step('the paused failure is listed under kind paused');
  await page.goto(`${consoleURL}#/failures?kind=paused`);
  await page.waitForSelector('#failures tbody tr');
  assert.equal(await page.$$eval('#failures tbody tr', (rows) => rows.length), 1);

  step('resume erp: not paused any more');
  await page.goto(`${consoleURL}#/consumers`);
  await page.waitForSelector(`${erpRow}[data-paused="true"]`);
  await page.click(`${erpRow} button.resume`);
  await page.waitForSelector(`${erpRow}[data-paused="false"]`);
  assert.match(await page.textContent('#consumer-notice'), /erp resumed/);

  step('reset the breaker: closed, said so');
  await page.click(`${erpRow} button.reset`);
  await page.waitForSelector('#consumer-notice');
  assert.match(await page.textContent('#consumer-notice'), /breaker was already closed/);
  await page.close();

  step('a reader sees the consumers but no actions');
  const reader = await signIn(readerKey);
  assert.equal(await reader.$(`${erpRow} button`), null, 'no buttons for a reader');
  assert.match(await reader.textContent('#consumers-reader'), /operator role/);
  await reader.close();

  assert.deepEqual(pageErrors, [], 'the page threw');
  console.log('ok');
} finally {
  await context.close();
}
