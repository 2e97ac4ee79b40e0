// Drives the console's Consumers view in Debian's chromium through playwright-core. Run by
// consumers_test.go, which starts dvrouter with one consumer, erp. Exits non-zero on the first
// check that fails.
import assert from 'node:assert/strict';
import path from 'node:path';
import { launch, must, step } from './browser.mjs';

const consoleURL = must('CONSOLE_URL');
const key = must('CONSOLE_KEY');
const actor = must('CONSOLE_ACTOR');
const readerKey = must('CONSOLE_READER_KEY');
const shots = must('CONSOLE_SCREENSHOTS');

const context = await launch(30_000);
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

// noticeSays waits until the notice above the list matches re: the notice of the previous action
// is still there while the next one runs, so waiting for the element alone is not enough.
async function noticeSays(page, re) {
  try {
    await page.waitForFunction(
      ([src, flags]) => new RegExp(src, flags).test(document.querySelector('#consumer-notice')?.textContent ?? ''),
      [re.source, re.flags],
      { timeout: 15_000 },
    );
  } catch (err) {
    const text = await page.textContent('#consumer-notice').catch(() => '(no notice)');
    assert.fail(`notice ${JSON.stringify(text)} never matched ${re}: ${err.message}`);
  }
}

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
  await noticeSays(page, /erp paused/);
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
  await noticeSays(page, /Test event [0-9a-f-]+ delivered to erp in \d+ ms/);
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
  await noticeSays(page, /erp resumed/);

  step('reset the breaker: closed, said so');
  await page.click(`${erpRow} button.reset`);
  await noticeSays(page, /breaker was already closed/);
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
