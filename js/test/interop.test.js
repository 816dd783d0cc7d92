// transformers.js loads `edgekd pack --target hf` folders as they are and answers as edgekd's JS runtime does
// on the same folder, early exit on (the default speed is inside the graph). Local files only: no hub.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { AutoModelForSequenceClassification, AutoTokenizer, env, pipeline } from '@huggingface/transformers';

import { load } from '../src/node.js';

const here = new URL('./fixtures/', import.meta.url);
const expected = JSON.parse(readFileSync(new URL('expected.json', here), 'utf8'));
const { texts, pairs, folders } = expected.hf;

env.allowRemoteModels = false;
env.localModelPath = fileURLToPath(here);

function argmax(row) {
  let best = 0;
  row.forEach((x, i) => { if (x > row[best]) best = i; });
  return best;
}

// rows of a [B, C] tensor, and the exit layers beside them
function rowsOf(tensor) {
  const [batch, width] = tensor.dims;
  return Array.from({ length: batch }, (_, i) => Array.from(tensor.data.slice(i * width, (i + 1) * width)));
}

// one batch, as transformers.js runs a list: int8's dynamic quantization sets its activation scales per batch
// (over every row and padded position), so the same batch gives the same answers
async function edgekd(name, items) {
  const model = await load(new URL(`${name}/`, here));
  const got = await model.classify(items, { batchSize: items.length });
  const layers = model.numLayers;
  await model.release();
  return { got, layers };
}

function agreement(name, same, total) {
  assert.equal(same, total, `${name}: ${same}/${total} agree`);
}

test('pipeline("text-classification") on hf folders gives edgekd\'s labels at the default speed', async () => {
  for (const name of ['hf-fp32', 'hf-int8']) {
    const classify = await pipeline('text-classification', name, { local_files_only: true });
    const theirs = await classify(texts);
    const { got: ours } = await edgekd(name, texts);
    assert.equal(theirs.length, texts.length);
    let same = 0;
    theirs.forEach((t, i) => {
      same += t.label === ours[i].label && Math.abs(t.score - ours[i].probs[ours[i].label]) < 1e-3;
    });
    agreement(name, same, texts.length);
    await classify.dispose();
  }
});

test('a multi-label hf folder: the pipeline\'s sigmoids at the thresholds give edgekd\'s label sets', async () => {
  const name = 'hf-multi';
  const classify = await pipeline('text-classification', name, { local_files_only: true });
  const manifest = JSON.parse(readFileSync(new URL(`${name}/manifest.json`, here), 'utf8'));
  const labels = manifest.task.labels;
  const thresholds = manifest.task.thresholds ?? labels.map(() => 0.5);
  const theirs = await classify(texts, { top_k: null });
  const { got: ours } = await edgekd(name, texts);
  let same = 0;
  theirs.forEach((scores, i) => {
    const on = labels.filter((label, c) => scores.find((s) => s.label === label).score >= thresholds[c]);
    same += JSON.stringify(on) === JSON.stringify(ours[i].labels);
  });
  agreement(name, same, texts.length);
  await classify.dispose();
});

test('a token-classification hf folder: pipeline("token-classification") tags every word as edgekd does', async () => {
  const name = 'hf-tokens';
  const tag = await pipeline('token-classification', name, { local_files_only: true });
  const model = await load(new URL(`${name}/`, here));
  let same = 0;
  let tagged = 0;
  for (const text of texts) {
    // theirs: every word's first sub-token not tagged O (special tokens and later pieces left out; [UNK] is a
    // word), with its raw argmax tag; ours: each word's tag (edgekd writes an I- that opens an entity as B-, so
    // the type and the score are compared)
    const theirs = (await tag(text)).filter((t) => !t.word.startsWith('##') && !/^\[(CLS|SEP|PAD|MASK)\]$/.test(t.word));
    const [ours] = await model.classify([text], { words: true });
    const mine = ours.words.filter((w) => w.tag !== 'O');
    tagged += mine.length;
    same += theirs.length === mine.length && theirs.every((t, i) => t.entity.slice(2) === mine[i].tag.slice(2) &&
      Math.abs(t.score - mine[i].score) < 1e-4);
  }
  assert.ok(tagged > 50, `${tagged} words tagged in ${texts.length} texts`);
  agreement(name, same, texts.length);
  await tag.dispose();
  await model.release();
});

// transformers.js 4 truncates by cutting the encoded ids at max_length, closing [SEP] included, where edgekd and
// the tokenizers library (transformers in Python) drop words longest-first and keep it: the pairs compared here
// are those that fit in max_length tokens (the card says so); the rest is checked to differ only by that cut
async function fitting(name, items) {
  const model = await load(new URL(`${name}/`, here));
  const keep = items.filter((p) => model.encoder.pairIds(p[0], p[1]).ids.length < model.info.maxLength);
  await model.release();
  return keep;
}

test('the model runs with early exit on: exit_layer equals edgekd\'s, and easy texts leave early', async () => {
  for (const name of ['hf-fp32', 'hf-pair']) {
    const pair = folders[name].from === 'pair';
    const tokenizer = await AutoTokenizer.from_pretrained(name, { local_files_only: true });
    const model = await AutoModelForSequenceClassification.from_pretrained(name, { local_files_only: true });
    const items = pair ? await fitting(name, pairs) : texts;
    if (pair) assert.ok(items.length >= 200, `${items.length} of ${pairs.length} pairs fit`);
    const inputs = pair
      ? await tokenizer(items.map((p) => p[0]), { text_pair: items.map((p) => p[1]), padding: true, truncation: true })
      : await tokenizer(texts, { padding: true, truncation: true });
    const out = await model.forward(inputs); // every output of the graph (model(inputs) keeps only logits)
    const exits = Array.from(out.exit_layer.data, Number);
    const labels = rowsOf(out.logits).map(argmax).map((c) => model.config.id2label[c]);
    const { got: ours, layers } = await edgekd(name, items);
    assert.deepEqual(labels, ours.map((r) => r.label), name);
    assert.deepEqual(exits, ours.map((r) => r.exitLayer), name);
    assert.ok(exits.some((l) => l < layers) && exits.some((l) => l === layers), `${name}: exits ${[...new Set(exits)]}`);
    await model.dispose();
  }
});

test('edgekd\'s JS runtime on an hf folder runs its default speed and refuses another in one line', async () => {
  const model = await load(new URL('hf-fp32/', here));
  assert.equal(model.defaultSpeed, folders['hf-fp32'].default_speed);
  await assert.rejects(model.classify(texts.slice(0, 2), { speed: 0 }), (err) => err instanceof RangeError &&
    /pack --target hf/.test(err.message) && !err.message.includes('\n'));
  const atDefault = await model.classify(texts.slice(0, 5), { speed: model.defaultSpeed });
  assert.deepEqual(atDefault, await model.classify(texts.slice(0, 5)));
  await model.release();
});

test('a pair longer than max_length: transformers.js cuts its ids at max_length (closing [SEP] lost)', async () => {
  const tokenizer = await AutoTokenizer.from_pretrained('hf-pair', { local_files_only: true });
  const model = await load(new URL('hf-pair/', here));
  const max = model.info.maxLength;
  const long = pairs.filter((p) => model.encoder.pairIds(p[0], p[1]).ids.length >= max);
  assert.ok(long.length > 0);
  for (const [a, b] of long) {
    const theirs = Array.from((await tokenizer(a, { text_pair: b, truncation: true })).input_ids.data, Number);
    const full = Array.from((await tokenizer(a, { text_pair: b })).input_ids.data, Number);
    const ours = model.encoder.pairIds(a, b).ids;
    assert.deepEqual(theirs, full.slice(0, max));
    assert.equal(ours.length, max);
    assert.equal(ours.at(-1), full.at(-1)); // edgekd keeps the closing [SEP]
  }
  await model.release();
});
