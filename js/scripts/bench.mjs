// Node side of `edgekd bench`: node scripts/bench.mjs JOB.json  ->  one JSON line of rows.
// JOB: {"bundle": DIR, "texts": [...], "gold": [...], "speeds": [...], "latencyTexts": 200}
import { readFileSync } from 'node:fs';

import { benchmark } from '../src/bench.js';
import { load } from '../src/node.js';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const model = await load(job.bundle, { sessionOptions: job.sessionOptions ?? {} });
const rows = await benchmark(model, job.texts, job.gold, job.speeds, { latencyTexts: job.latencyTexts ?? 200 });
console.log(JSON.stringify({ onnxruntime: 'onnxruntime-node', node: process.version, rows }));
