// Drive the demo page in a real Chromium (playwright-core + the system's chromium):
// type a text, set the speed, read what the page shows, run a batch of texts in the page,
// time batch-1 calls, and save a screenshot. Prints one JSON object.
//
//   node scripts/drive-demo.mjs JOB.json     (or the job on standard input: node scripts/drive-demo.mjs - < JOB.json)
//   JOB: {"url": "...", "text": "...", "speed": 0.3, "screenshot": "out.png",
//         "batch": {"texts": [...], "speeds": [0, 0.5], "words": false}, "latencyTexts": [...]}
// The job travels in a file or on stdin, never on the command line: a bench's texts pass the kernel's
// limit for one argument (about 128 kB).
import { readFileSync } from 'node:fs';

import { chromium } from 'playwright-core';

const source = process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : 0;  // 0: standard input
const job = JSON.parse(readFileSync(source, 'utf8'));
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 720 }, deviceScaleFactor: 1 });
  const console_ = [];
  page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console_.push(`pageerror: ${e.message}`));
  await page.goto(job.url);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 60000 });
  if ((await page.getAttribute('body', 'data-state')) === 'error') {
    throw new Error(`the page could not load the bundle: ${await page.textContent('#status')}\n${console_.join('\n')}`);
  }
  // as a person would: set the slider, type the text, wait for the result to show it
  await page.$eval('#speed', (el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }, job.speed);
  await page.fill('#text', '');
  await page.type('#text', job.text, { delay: 5 });
  if (job.textPair !== undefined) {
    await page.fill('#text-pair', '');
    await page.type('#text-pair', job.textPair, { delay: 5 });
  }
  await page.waitForFunction((t) => window.edgekd && document.getElementById('text').value === t, job.text);
  await page.evaluate(() => window.edgekd.run());
  const shown = await page.evaluate(() => ({
    label: document.getElementById('label').textContent,
    exitLayer: Number(document.getElementById('exit-layer').textContent),
    probs: Object.fromEntries([...document.querySelectorAll('.bar')].map((b) => [b.dataset.label, Number(b.dataset.prob)])),
    result: JSON.parse(document.body.dataset.result),
    device: window.edgekd.model.device,
    wasm: window.edgekd.model.wasm,
    pairBoxShown: !document.getElementById('pair-box').hidden,
    marks: [...document.querySelectorAll('#entities mark')].map((m) => ({ type: m.dataset.type,
      word: m.firstChild.textContent })),
  }));
  const batch = job.batch ? await page.evaluate(async ({ texts, speeds, words }) => {
    const out = [];
    for (const speed of speeds) out.push({ speed, results: await window.edgekd.model.classify(texts, { speed, words }) });
    return out;
  }, job.batch) : null;
  const latency = job.latencyTexts ? await page.evaluate(async ({ texts, speed, rounds }) => {
    const model = window.edgekd.model;
    for (const t of texts.slice(0, 5)) await model.classify(t, { speed });
    let best = Infinity;
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      for (const t of texts) await model.classify(t, { speed, batchSize: 1 });
      best = Math.min(best, (performance.now() - start) / texts.length);
    }
    return best;
  }, { texts: job.latencyTexts, speed: job.latencySpeed ?? job.speed, rounds: 3 }) : null;
  const bench = job.bench ? await page.evaluate(async ({ texts, gold, speeds, latencyTexts }) => {
    const { benchmark } = await import('/src/bench.js');
    return benchmark(window.edgekd.model, texts, gold, speeds, { latencyTexts });
  }, job.bench) : null;
  if (job.screenshot) await page.screenshot({ path: job.screenshot, fullPage: true });
  console.log(JSON.stringify({ shown, batch, latencyMs: latency, bench, console: console_ }));
} finally {
  await browser.close();
}
