// Classify items with the Node runtime: a JSON job on stdin -> one JSON line of results (Python's shapes:
// label / labels / score, probs, exitLayer, uncertainty). Used to check that a bundle answers the same
// everywhere (scripts/answers_everywhere.py).  Job: {"bundle": DIR, "items": [...], "speed": 0.3}
import { load } from '../src/node.js';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const job = JSON.parse(input);
const model = await load(job.bundle);
const results = await model.classify(job.items, job.speed === undefined ? {} : { speed: job.speed });
console.log(JSON.stringify({ problem: model.problem, results }));
await model.release();
