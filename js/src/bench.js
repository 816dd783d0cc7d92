// Measure a loaded model the way `edgekd bench` measures the Python systems: accuracy and layers
// at batch 32, batch-1 latency per text (best median of two rounds), throughput at batch 32.
// Shared by Node (scripts/bench.mjs) and the browser (the demo page, driven by playwright).

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function percentile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  const at = (q / 100) * (s.length - 1);
  const lo = Math.floor(at);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (at - lo);
}

/**
 * @param model a loaded EdgeModel
 * @param {string[]} texts
 * @param {string[]} gold label names (single-label; ignored for the other problem types)
 * @param {number[]} speeds
 */
export async function benchmark(model, texts, gold, speeds, { latencyTexts = 200, batchSize = 32, rounds = 2, warmup = 10 } = {}) {
  const rows = [];
  for (const speed of speeds) {
    const results = [];
    const words = model.problem === 'token-classification';
    for (let i = 0; i < texts.length; i += batchSize) {
      results.push(...(await model.classify(texts.slice(i, i + batchSize), { speed, batchSize, words })));
    }
    // single-label: scored here against the gold names; the other problem types hand their answers back
    // (label sets, scores, every word's tag) for edgekd bench to score with its metrics
    const single = model.problem === undefined || model.problem === 'single-label';
    const accuracy = single ? results.filter((r, i) => r.label === gold[i]).length / texts.length : null;
    const answers = single ? undefined : results.map((r) => (model.problem === 'regression' ? r.score
      : words ? r.words.map((w) => w.tag) : r.labels));
    const averageLayers = results.reduce((a, r) => a + r.exitLayer, 0) / results.length;
    const sample = texts.slice(0, latencyTexts);
    let best = null;
    for (let round = 0; round < rounds; round++) {
      for (const t of sample.slice(0, warmup)) await model.classify([t], { speed, batchSize: 1 });
      const times = [];
      for (const t of sample) {
        const start = performance.now();
        await model.classify([t], { speed, batchSize: 1 });
        times.push(performance.now() - start);
      }
      if (best === null || median(times) < median(best)) best = times;
    }
    let throughput = 0;
    for (let round = 0; round < rounds; round++) {
      const start = performance.now();
      for (let i = 0; i < texts.length; i += batchSize) await model.classify(texts.slice(i, i + batchSize), { speed, batchSize });
      throughput = Math.max(throughput, texts.length / ((performance.now() - start) / 1e3));
    }
    rows.push({ speed, accuracy, averageLayers, p50MsB1: median(best), p95MsB1: percentile(best, 95), throughputB32: throughput,
      ...(answers ? { answers } : {}) });
  }
  return rows;
}
