// Batch-1 latency in Node of one `pack --target hf` folder run two ways: transformers.js (pipeline for single
// texts; tokenizer + AutoModelForSequenceClassification for pairs, which its pipeline does not take) and edgekd's
// JS runtime. The median per-text time over `rounds` passes after a warm-up, and how often the two agree.
//
//   node scripts/hf-latency.mjs - < JOB.json     JOB: {"folder": "/abs/path", "texts": [...] | "pairs": [[a, b], ...],
//                                                      "rounds": 3}
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { AutoModelForSequenceClassification, AutoTokenizer, env, pipeline } from '@huggingface/transformers';

import { load } from '../src/node.js';

const job = JSON.parse(readFileSync(process.argv[2] && process.argv[2] !== '-' ? process.argv[2] : 0, 'utf8'));
env.allowRemoteModels = false;
env.localModelPath = path.dirname(job.folder) + path.sep;
const name = path.basename(job.folder);
const pair = Array.isArray(job.pairs);
const items = pair ? job.pairs : job.texts;
const rounds = job.rounds ?? 3;

const edgekd = await load(job.folder);
// the answer each side gives: the label, or for regression the score
const answerOf = (r) => r.label ?? r.score;
let theirs;
if (pair) {
  const tokenizer = await AutoTokenizer.from_pretrained(name);
  const model = await AutoModelForSequenceClassification.from_pretrained(name);
  theirs = async ([a, b]) => {
    const logits = Array.from((await model(await tokenizer(a, { text_pair: b, truncation: true }))).logits.data);
    return edgekd.problem === 'regression' ? logits[0] : edgekd.labels[logits.indexOf(Math.max(...logits))];
  };
} else {
  const classify = await pipeline('text-classification', name);
  theirs = async (t) => (await classify(t))[0].label;
}
const ours = async (item) => (await edgekd.classify([item], { batchSize: 1 }))[0];

async function time(run) {
  for (const item of items.slice(0, 10)) await run(item);
  const per = [];
  const answers = [];
  for (let r = 0; r < rounds; r++) {
    for (const item of items) {
      const start = performance.now();
      const answer = await run(item);
      per.push(performance.now() - start);
      if (r === 0) answers.push(answer);
    }
  }
  per.sort((a, b) => a - b);
  return { p50: per[Math.floor(per.length / 2)], p90: per[Math.floor(0.9 * per.length)], answers };
}

// alternate the two, twice, so that a slow spell of a shared machine does not fall on one side only
const runs = { transformers: [], edgekd: [] };
for (let i = 0; i < 2; i++) {
  runs.transformers.push(await time(theirs));
  runs.edgekd.push(await time(ours));
}
const best = (xs) => xs.reduce((a, b) => (b.p50 < a.p50 ? b : a));
const t = best(runs.transformers);
const e = best(runs.edgekd);
const same = t.answers.filter((a, i) => (typeof a === 'number' ? Math.abs(a - answerOf(e.answers[i])) < 1e-3
  : a === answerOf(e.answers[i]))).length;
console.log(JSON.stringify({
  items: items.length, rounds, transformers_js: { p50_ms: t.p50, p90_ms: t.p90 }, edgekd_js: { p50_ms: e.p50, p90_ms: e.p90 },
  agree: same, layers: e.answers.reduce((s, r) => s + r.exitLayer, 0) / e.answers.length,
}));
