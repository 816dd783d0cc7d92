// The demo page: loads the bundle served beside it and classifies as you type. No server-side inference.
import { load } from '../src/browser.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const bundleUrl = params.get('bundle') ?? '/bundle/';
const device = params.get('device') ?? 'auto';
// ?threads=N (0: onnxruntime-web's default) and ?proxy=1 (inference in a worker): what benchmarks measure
const threads = params.has('threads') ? Number(params.get('threads')) : undefined;
const proxy = params.has('proxy') ? params.get('proxy') === '1' : undefined;

// the text with every entity marked (its type beside it); built from text nodes, never from HTML
function highlight(text, entities) {
  const parts = [];
  let at = 0;
  for (const e of entities) {
    parts.push(document.createTextNode(text.slice(at, e.start)));
    const mark = document.createElement('mark');
    mark.dataset.type = e.entity_group;
    mark.title = `${e.entity_group} ${(100 * e.score).toFixed(1)}%`;
    mark.append(document.createTextNode(e.word), Object.assign(document.createElement('sup'),
      { textContent: e.entity_group }));
    parts.push(mark);
    at = e.end;
  }
  parts.push(document.createTextNode(text.slice(at)));
  $('entities').replaceChildren(...parts);
}

function show(result, model, ms, text) {
  $('result').hidden = false;
  // the answer of the bundle's problem type: a class and its probability; the labels that are on; a score;
  // the entities, marked in the text
  $('entities').hidden = model.problem !== 'token-classification';
  if (model.problem === 'regression') {
    $('label').textContent = `${model.labels[0]} ${result.score.toFixed(3)}`;
    $('confidence').textContent = '';
  } else if (model.problem === 'token-classification') {
    $('label').textContent = result.entities.length ? result.entities.map((e) => `${e.word} (${e.entity_group})`)
      .join(', ') : '(no entity)';
    $('confidence').textContent = '';
    highlight(text, result.entities);
  } else if (model.problem === 'multi-label') {
    $('label').textContent = result.labels.length ? result.labels.join(', ') : '(no label)';
    $('confidence').textContent = '';
  } else {
    $('label').textContent = result.label;
    $('confidence').textContent = `${(100 * result.probs[result.label]).toFixed(1)}%`;
  }
  $('bars').replaceChildren(...(result.probs ? model.labels : []).map((name) => {
    const row = document.createElement('div');
    row.className = 'bar';
    row.dataset.label = name;
    row.dataset.prob = String(result.probs[name]);
    row.innerHTML = `<span></span><div class="track"><div class="fill"></div></div><span></span>`;
    row.children[0].textContent = name;
    row.querySelector('.fill').style.width = `${100 * result.probs[name]}%`;
    row.children[2].textContent = `${(100 * result.probs[name]).toFixed(1)}%`;
    return row;
  }));
  const pips = Array.from({ length: model.numLayers }, (_, i) =>
    `<span class="pip${i < result.exitLayer ? '' : ' skipped'}"></span>`).join('');
  $('layers').innerHTML = `${pips} left at layer <b id="exit-layer">${result.exitLayer}</b> of ${model.numLayers}` +
    ` (uncertainty <span id="uncertainty">${result.uncertainty.toFixed(3)}</span>)`;
  $('timing').textContent = `${ms.toFixed(2)} ms in this browser (${model.device})`;
  document.body.dataset.result = JSON.stringify(result);
}

async function main() {
  const model = await load(bundleUrl, { device, threads, proxy });
  const speed = $('speed');
  speed.value = String(model.defaultSpeed);
  let pending = Promise.resolve();
  const run = () => {
    $('speed-value').textContent = Number(speed.value).toFixed(2);
    pending = pending.then(async () => {
      const start = performance.now();
      const item = model.info.textPair ? [$('text').value, $('text-pair').value] : $('text').value;
      const [result] = await model.classify([item], { speed: Number(speed.value) });
      show(result, model, performance.now() - start, item);
      document.body.dataset.state = 'ready';
    });
    return pending;
  };
  if (model.info.textPair) {
    $('pair-box').hidden = false;
    $('text').placeholder = 'Type the first text of the pair';
  }
  $('text').addEventListener('input', run);
  $('text-pair').addEventListener('input', run);
  speed.addEventListener('input', run);
  window.edgekd = { model, run };
  $('status').textContent = `${model.labels.length} labels, ${model.numLayers} layers, default speed ` +
    `${model.defaultSpeed} (${model.device})`;
  await run();
}

main().catch((err) => {
  document.body.dataset.state = 'error';
  $('status').textContent = `Could not load the bundle: ${err.message}`;
  console.error(err);
});
