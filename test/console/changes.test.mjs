// Drives the console's Change tracking view in Debian's chromium through playwright-core. Run by
// changes_test.go, which starts dvrouter with one route reading account by change tracking and
// writes account's state (and that of contact, which no route reads) into the token store.
// Exits non-zero on the first check that fails.
import assert from 'node:assert/strict';
import path from 'node:path';
import { launch, must, step } from './browser.mjs';

const consoleURL = must('CONSOLE_URL');
const key = must('CONSOLE_KEY');
const actor = must('CONSOLE_ACTOR');
const readerKey = must('CONSOLE_READER_KEY');
const tokenAt = must('CONSOLE_TOKEN_AT');
const shots = must('CONSOLE_SCREENSHOTS');

const context = await launch(30_000);
const pageErrors = [];

const accountRow = '#changes tbody tr[data-table="account"]';
const contactRow = '#changes tbody tr[data-table="contact"]';

async function signIn(k) {
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  await page.goto(`${consoleURL}#/changes`);
  await page.fill('#key', k);
  await page.click('#signin button[type=submit]');
  await page.waitForSelector(accountRow);
  return page;
}

// cell is the text of the row's cell labelled label.
async function cell(page, row, label) {
  return (await page.textContent(`${row} td[data-label="${label}"]`)).trim();
}

try {
  step('an operator sees account with its token time, pending pages, full read and state');
  const page = await signIn(key);
  assert.match(await page.textContent('#changes-results .page-info'), /Environment https:\/\/contoso\.crm4\.dynamics\.com, schedule 0 \*\/5 \* \* \* \*, stale after 1h0m0s/);
  assert.equal(await page.getAttribute(`${accountRow} td[data-label="Last token"] time`, 'datetime'), tokenAt);
  assert.equal(await cell(page, accountRow, 'Pending pages'), 'yes, 2 read');
  assert.equal(await cell(page, accountRow, 'Changed'), '12');
  assert.equal(await cell(page, accountRow, 'Deleted'), '1');
  assert.equal(await cell(page, accountRow, 'Full reads'), '1first read of the table');
  assert.equal(await cell(page, accountRow, 'State'), 'ok');
  assert.ok(await page.$(`${accountRow} button[data-table="account"]`), 'a reset button for account');

  step('contact, which no route reads, is listed as such, without a reset');
  assert.equal(await cell(page, contactRow, 'State'), 'no route reads it');
  assert.equal(await page.$(`${contactRow} button`), null, 'no reset for a table no route reads');
  await page.screenshot({ path: path.join(shots, 'changes-1280x800.png') });

  step('reset account: its token is gone and the next read is a full read, by whom');
  await page.click(`${accountRow} button`);
  await page.waitForFunction(
    (sel) => document.querySelector(`${sel} td[data-label="Last token"]`)?.textContent.trim() === '—',
    accountRow, { timeout: 15_000 });
  assert.equal(await cell(page, accountRow, 'Pending pages'), '—');
  assert.equal(await cell(page, accountRow, 'Full reads'), `1reset by ${actor}`);
  assert.equal(await page.$('#changes-error'), null, 'no error shown');
  await page.screenshot({ path: path.join(shots, 'changes-reset-1280x800.png') });
  await page.close();

  step('a reader sees account but no reset');
  const reader = await signIn(readerKey);
  assert.equal(await cell(reader, accountRow, 'Last token'), '—');
  assert.equal(await reader.$('#changes button'), null, 'no buttons for a reader');
  await reader.close();

  assert.deepEqual(pageErrors, [], 'the page threw');
  console.log('ok');
} finally {
  await context.close();
}
