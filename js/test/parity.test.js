// Parity with the Python runtime: the committed fixtures hold Python's answers
// (scripts/make_js_fixtures.py; a Python test keeps them current).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { load } from '../src/node.js';

const here = new URL('./fixtures/', import.meta.url);
const expected = JSON.parse(readFileSync(new URL('expected.json', here), 'utf8'));

for (const [name, want] of Object.entries(expected.bundles)) {
  const items = want.pairs ?? expected.texts; // the pair bundle answers text pairs
  test(`${name} bundle: token ids equal Python's`, async () => {
    const model = await load(new URL(`${name}/`, here));
    items.forEach((item, i) => {
      if (want.pairs) {
        const { ids, types } = model.encoder.pairIds(item[0], item[1]);
        assert.deepEqual(ids, want.ids[i], JSON.stringify(item));
        assert.deepEqual(types, want.types[i], JSON.stringify(item));
      } else {
        assert.deepEqual(model.encoder.ids(item), want.ids[i], JSON.stringify(item));
      }
    });
  });

  test(`${name} bundle: answers, exit layers and probs equal Python's at three speeds`, async () => {
    const model = await load(new URL(`${name}/`, here));
    assert.equal(model.problem, want.problem ?? 'single-label');
    let rows = 0;
    let sameLabel = 0;
    let sameExit = 0;
    const tokens = model.problem === 'token-classification';
    for (const { speed, results } of want.cases) {
      const got = await model.classify(items, { speed, words: tokens });
      assert.equal(got.length, results.length);
      got.forEach((g, i) => {
        const w = results[i];
        const where = `${JSON.stringify(items[i])} at speed ${speed}`;
        rows += 1;
        // the answer of the problem type: a class; a set of labels; a score
        const same = model.problem === 'regression' ? Math.abs(g.score - w.score) < 1e-4
          : model.problem === 'multi-label' ? JSON.stringify(g.labels) === JSON.stringify(w.labels)
            : tokens ? sameEntities(items[i], g, w) : g.label === w.label;
        sameLabel += same;
        sameExit += g.exitLayer === w.exitLayer;
        assert.deepEqual(Object.keys(g).sort(), Object.keys(w).sort(), where);
        if (w.probs) assert.deepEqual(Object.keys(g.probs), model.labels);
        if (want.precision === 'fp32') {
          assert.ok(same, where);
          assert.equal(g.exitLayer, w.exitLayer, where);
          if (w.probs) for (const label of model.labels) assert.ok(Math.abs(g.probs[label] - w.probs[label]) < 1e-4);
          assert.ok(Math.abs(g.uncertainty - w.uncertainty) < 1e-4);
        }
      });
    }
    // int8: dynamic quantization's activation scales depend on the batch, so agreement, not identity
    assert.ok(sameLabel / rows >= 0.99, `labels agree on ${sameLabel}/${rows}`);
    assert.ok(sameExit / rows >= 0.98, `exit layers agree on ${sameExit}/${rows}`);
    await model.release();
  });
}

// Python's offsets count code points, JavaScript's UTF-16 units (text.slice(start, end) is the word in each)
function utf16(text, codePoint) {
  return Array.from(text).slice(0, codePoint).join('').length;
}

// the same words (offsets, tags) and entities (type, span, text), scores within 1e-4
function sameEntities(text, got, want) {
  const words = (list, convert) => list.map((x) => [x.word, convert(x.start), convert(x.end), x.tag ?? x.entity_group]);
  const same = (a, b, convert) => JSON.stringify(words(a, (n) => n)) === JSON.stringify(words(b, convert));
  const py = (n) => utf16(text, n);
  return same(got.words, want.words, py) && same(got.entities, want.entities, py) &&
    got.entities.every((e, k) => Math.abs(e.score - want.entities[k].score) < 1e-4);
}

test('a token-classification bundle answers entities whose offsets slice the text, and refuses words elsewhere', async () => {
  const model = await load(new URL('tokens/', here));
  const texts = ['good film, really!', 'café 影片 😀 bad plot'];
  const got = await model.classify(texts, { speed: 0, words: true });
  got.forEach((answer, i) => {
    for (const x of [...answer.words, ...answer.entities]) assert.equal(texts[i].slice(x.start, x.end), x.word);
    assert.equal(answer.exitLayer, model.numLayers);
  });
  assert.deepEqual(got[0].words.map((w) => w.word), ['good', 'film', ',', 'really', '!']);
  assert.ok(!('words' in (await model.classify(texts[0]))[0]));
  const fp32 = await load(new URL('fp32/', here));
  await assert.rejects(fp32.classify(['good'], { words: true }), /words applies to token-classification bundles/);
});

test('results do not depend on the batch a text shares', async () => {
  const model = await load(new URL('fp32/', here));
  const together = await model.classify(expected.texts, { speed: 0.5 });
  for (const [i, text] of expected.texts.entries()) {
    const [alone] = await model.classify(text, { speed: 0.5, batchSize: 1 });
    assert.equal(alone.exitLayer, together[i].exitLayer);
    assert.ok(Math.abs(alone.probs.positive - together[i].probs.positive) < 1e-5);
  }
});

test('speed defaults to the bundle default and 0 runs every layer', async () => {
  const model = await load(new URL('fp32/', here));
  const full = await model.classify(expected.texts, { speed: 0 });
  assert.ok(full.every((r) => r.exitLayer === model.numLayers));
  const byDefault = await model.classify(expected.texts);
  const atDefault = await model.classify(expected.texts, { speed: model.defaultSpeed });
  assert.deepEqual(byDefault, atDefault);
});

test('a pair bundle takes [text, textPair] and {text, textPair}, and refuses a bare string naming the index', async () => {
  const model = await load(new URL('pair/', here));
  const [a, b] = expected.bundles.pair.pairs[0];
  const [x] = await model.classify([[a, b]], { speed: 0 });
  const [y] = await model.classify([{ text: a, textPair: b }], { speed: 0 });
  assert.deepEqual(x, y);
  await assert.rejects(model.classify([[a, b], 'alone']), /texts\[1\] is a single string, but this bundle classifies text pairs/);
  await assert.rejects(model.classify([[a, b, 'c']]), /texts\[0\] is an array of 3 items/);
});
