// What the console's browser scripts share: their settings from the Go test that runs them, and
// Debian's chromium started through playwright-core as every script needs it.
import { chromium } from 'playwright-core';

// must is the setting name from the environment; a script run by hand without it stops here.
export function must(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through go test ./test/console`);
  return v;
}

// step prints the check about to run, so that a failure's output says where it stopped.
export function step(name) {
  console.log(`- ${name}`);
}

// launch starts chromium headless in the profile BROWSER_PROFILE names, at 1280x800, UTC and
// en-US, each action waiting at most timeout milliseconds.
export async function launch(timeout) {
  const context = await chromium.launchPersistentContext(must('BROWSER_PROFILE'), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic'],
    viewport: { width: 1280, height: 800 },
    timezoneId: 'UTC',
    locale: 'en-US',
  });
  context.setDefaultTimeout(timeout);
  return context;
}
