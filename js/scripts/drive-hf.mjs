// Drive the demo page's transformers.js variant (/hf) in a real Chromium: wait for it to load a `pack --target hf`
// folder, run a list of texts through transformers.js' pipeline and edgekd's browser runtime in the page, and
// optionally time batch-1 calls of both. Prints one JSON object.
//
//   node scripts/drive-hf.mjs - < JOB.json     JOB: {"url": "...", "texts": [...], "latencyTexts": [...]}
import { readFileSync } from 'node:fs';

import { chromium } from 'playwright-core';

const job = JSON.parse(readFileSync(process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : 0, 'utf8'));
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage();
  const console_ = [];
  page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console_.push(`pageerror: ${e.message}`));
  await page.goto(job.url);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 120000 });
  if ((await page.getAttribute('body', 'data-state')) === 'error') {
    throw new Error(`the page could not load the folder: ${await page.textContent('#status')}\n${console_.join('\n')}`);
  }
  const answers = await page.evaluate((texts) => window.hfDemo.both(texts), job.texts);
  const latencyMs = job.latencyTexts ? await page.evaluate((t) => window.hfDemo.latency(t), job.latencyTexts) : null;
  console.log(JSON.stringify({ answers, latencyMs, console: console_ }));
} finally {
  await browser.close();
}
