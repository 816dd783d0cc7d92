// The demo page's transformers.js variant: one `edgekd pack --target hf` folder, served beside the page, run by
// transformers.js' pipeline and by edgekd's browser runtime side by side. `window.hfDemo` lets a driver compare
// them on many texts and time batch-1 calls (tests/js/test_browser.py, benchmarks).
import { env, pipeline } from '@huggingface/transformers';

import { load } from '../src/browser.js';

const $ = (id) => document.getElementById(id);
const folder = new URLSearchParams(location.search).get('folder') ?? 'bundle';
// local files only: the folder from this server, onnxruntime-web's wasm from the copy transformers.js ships with
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '/';
env.backends.onnx.wasm.wasmPaths = '/node_modules/@huggingface/transformers/node_modules/onnxruntime-web/dist/';

function label(result) {
  return result.label ?? (result.labels ? result.labels.join(', ') || '(no label)' : result.score.toFixed(3));
}

async function main() {
  const classify = await pipeline('text-classification', folder, { device: 'wasm' });
  const model = await load(`/${folder}/`, { device: 'wasm' });
  async function both(texts) {
    return { transformers: await classify(texts), edgekd: await model.classify(texts, { batchSize: texts.length }) };
  }
  // the median of per-text times at batch 1 over `rounds` passes, for each of the two
  async function latency(texts, rounds = 3) {
    const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const time = async (run) => {
      for (const t of texts.slice(0, 5)) await run(t);
      const per = [];
      for (let r = 0; r < rounds; r++) {
        for (const t of texts) {
          const start = performance.now();
          await run(t);
          per.push(performance.now() - start);
        }
      }
      return median(per);
    };
    return { transformers: await time((t) => classify(t)), edgekd: await time((t) => model.classify(t, { batchSize: 1 })) };
  }
  async function run() {
    const text = $('text').value;
    const got = await both([text]);
    $('theirs').textContent = `${got.transformers[0].label} ${got.transformers[0].score.toFixed(3)}`;
    $('ours').textContent = label(got.edgekd[0]);
    $('exit-layer').textContent = String(got.edgekd[0].exitLayer);
    $('layers').textContent = String(model.numLayers);
    $('result').hidden = false;
    document.body.dataset.result = JSON.stringify(got);
  }
  window.hfDemo = { classify, model, both, latency, run };
  $('text').addEventListener('input', run);
  $('status').textContent = `Loaded: ${model.numLayers} layers, default speed ${model.defaultSpeed}`;
  await run();
  document.body.dataset.state = 'ready';
}

main().catch((err) => {
  $('status').textContent = `Could not load the folder: ${err.message}`;
  document.body.dataset.state = 'error';
  console.error(err);
});
