// Bad bundles and bad input are refused with errors that say what is wrong.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { BundleError, load } from '../src/node.js';

const fixture = fileURLToPath(new URL('./fixtures/fp32/', import.meta.url));

function copy(edit) {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgekd-js-'));
  cpSync(fixture, dir, { recursive: true });
  edit?.(dir);
  return dir;
}

function editManifest(dir, change) {
  const file = path.join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8'));
  change(manifest);
  writeFileSync(file, JSON.stringify(manifest));
}

async function refused(edit, pattern) {
  const dir = copy(edit);
  try {
    await assert.rejects(load(dir), (err) => err instanceof BundleError && pattern.test(err.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a replaced tokenizer is refused (sha256)', () =>
  refused((d) => writeFileSync(path.join(d, 'tokenizer.json'), readFileSync(path.join(d, 'tokenizer.json'), 'utf8').replace('"good"', '"goood"')),
    /tokenizer.json does not match its sha256/));

test('a flipped byte in model.onnx is refused (sha256)', () =>
  refused((d) => {
    const file = path.join(d, 'model.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(file, bytes);
  }, /model.onnx does not match its sha256/));

test('a newer schema says what to upgrade', () =>
  refused((d) => editManifest(d, (m) => { m.schema_version = 99; }), /newer than this runtime reads.*upgrade/s));

test('a bundle without the compiled graph is refused', () =>
  refused((d) => editManifest(d, (m) => { m.parts = m.parts.filter((s) => s.kind !== 'compiled'); }), /no compiled graph/));

test('file names that leave the folder are refused', () =>
  refused((d) => editManifest(d, (m) => { m.tokenizer = '../tokenizer.json'; }), /not a plain file name/));

test('a symlinked file is refused', () =>
  refused((d) => {
    rmSync(path.join(d, 'model.onnx'));
    symlinkSync(path.join(fixture, 'model.onnx'), path.join(d, 'model.onnx'));
  }, /symbolic link/));

test('a manifest that is not JSON is refused', () =>
  refused((d) => writeFileSync(path.join(d, 'manifest.json'), '{"schema'), /not valid JSON/));

test('a missing folder is refused', async () => {
  await assert.rejects(load('/no/such/bundle'), BundleError);
});

test('bad texts and speeds name the problem', async () => {
  const model = await load(fixture);
  await assert.rejects(model.classify(['fine', null]), (e) => e instanceof TypeError && /texts\[1\] is null/.test(e.message));
  await assert.rejects(model.classify(['fine'], { speed: '0.3' }), TypeError);
  await assert.rejects(model.classify(['fine'], { speed: 1.5 }), RangeError);
  await assert.rejects(model.classify(['fine'], { batchSize: 0 }), RangeError);
  assert.deepEqual(await model.classify([]), []);
});

test('a bundle of schema 3 (the task fields at the top level, the graphs as `stages`) loads and answers as its schema-4 twin', async () => {
  const texts = ['good', 'bad film', 'not quite fine'];
  const want = await (await load(fixture)).classify(texts, { speed: 0.3 });
  const dir = copy((d) => editManifest(d, (m) => {
    const { task, parts } = m;
    delete m.task;
    delete m.parts;
    m.stages = parts;
    Object.assign(m, { schema_version: 3, labels: task.labels, label_values: task.label_values,
      text_pair: task.text_pair, problem: task.problem, thresholds: task.thresholds, exit_rule: task.exit_rule });
  }));
  try {
    const model = await load(dir);
    assert.deepEqual(model.labels, ['negative', 'positive']);
    assert.deepEqual(await model.classify(texts, { speed: 0.3 }), want);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a schema-4 manifest without its task record is refused', () =>
  refused((d) => editManifest(d, (m) => { delete m.task; }), /no task record/));
