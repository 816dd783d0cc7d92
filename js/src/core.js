// The part of the runtime shared by Node and the browser: the manifest contract,
// integrity checks, tokenization and batched classification with the compiled graph.
// A platform entry (node.js, browser.js) supplies onnxruntime and a way to read files.

import { Tokenizer } from '@huggingface/tokenizers';

export const SCHEMA_VERSION = 3; // the newest manifest this runtime reads (3: text pairs, refused below for now)
export const GRAPH_INPUTS = ['input_ids', 'attention_mask', 'speed'];
export const GRAPH_OUTPUTS = ['logits', 'exit_layer', 'uncertainty'];
const PAD_TOKENS = ['[PAD]', '<pad>', '<PAD>'];

/** Every error this package raises on purpose (bad bundle, bad input). */
export class EdgeKDError extends Error {
  constructor(message) {
    super(message);
    this.name = 'EdgeKDError';
  }
}

/** The bundle is missing, damaged, or written by a newer edgekd. */
export class BundleError extends EdgeKDError {
  constructor(message) {
    super(message);
    this.name = 'BundleError';
  }
}

function safeName(name) {
  return typeof name === 'string' && name.length > 0 && !name.includes('/') && !name.includes('\\') &&
    name !== '.' && name !== '..';
}

/** Check a parsed manifest; returns what the runtime needs or throws one BundleError listing every problem. */
export function checkManifest(manifest, where) {
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) {
    throw new BundleError(`${where}: manifest.json is not a JSON object`);
  }
  const version = manifest.schema_version;
  if (!Number.isInteger(version)) {
    throw new BundleError(`${where}: manifest.json has no schema_version; it is not an edgekd manifest`);
  }
  if (version > SCHEMA_VERSION) {
    throw new BundleError(`${where}: manifest schema_version ${version} is newer than this runtime reads ` +
      `(${SCHEMA_VERSION}); upgrade with \`npm install @edgekd/runtime@latest\``);
  }
  if (manifest.text_pair === true) {
    throw new BundleError(`${where}: this bundle classifies text pairs (text, text_pair); this version of ` +
      '@edgekd/runtime runs single-text bundles only: use the Python runtime, or any ONNX Runtime binding ' +
      'with token_type_ids (see the README)');
  }
  const problems = [];
  const stages = Array.isArray(manifest.stages) ? manifest.stages : [];
  const graph = stages.find((s) => s && s.kind === 'compiled');
  if (!graph) {
    problems.push('no compiled graph (model.onnx) is listed; re-export the bundle with edgekd >= 0.2 (`edgekd export`)');
  } else if (!safeName(graph.file)) {
    problems.push(`the compiled graph's file name ${JSON.stringify(graph.file)} is not a plain file name`);
  }
  if (graph && !/^[0-9a-f]{64}$/.test(String(graph.sha256))) problems.push('the compiled graph has no valid sha256');
  const labels = manifest.labels;
  if (!Array.isArray(labels) || labels.length < 2 || !labels.every((l) => typeof l === 'string')) {
    problems.push('labels must be a list of at least two names');
  }
  if (!Number.isInteger(manifest.max_length) || manifest.max_length < 2) problems.push('max_length must be an integer >= 2');
  const tokenizer = manifest.tokenizer ?? 'tokenizer.json';
  if (!safeName(tokenizer)) problems.push(`tokenizer file name ${JSON.stringify(tokenizer)} is not a plain file name`);
  const tokenizerSha = manifest.tokenizer_sha256;
  if (!/^[0-9a-f]{64}$/.test(String(tokenizerSha))) problems.push('the tokenizer has no valid sha256 (tokenizer_sha256)');
  const speed = manifest.default_speed ?? 0;
  if (typeof speed !== 'number' || !(speed >= 0 && speed <= 1)) problems.push('default_speed must lie in [0, 1]');
  if (problems.length) {
    throw new BundleError(`${where} failed verification:\n  - ${problems.join('\n  - ')}`);
  }
  return {
    labels: [...labels],
    maxLength: manifest.max_length,
    defaultSpeed: speed,
    numLayers: manifest.student === 'transformer' ? manifest.num_layers : 1,
    graph,
    tokenizer,
    tokenizerSha,
    precision: manifest.precision ?? 'fp32',
  };
}

async function sha256Hex(bytes) {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Refuse bytes whose sha256 differs from the manifest's. */
export async function checkSha(bytes, want, name, where) {
  const got = await sha256Hex(bytes);
  if (got !== want) {
    throw new BundleError(`${where}: ${name} does not match its sha256 in manifest.json (corrupted or replaced)`);
  }
}

/** Text -> token ids with the bundle's tokenizer.json, truncated to maxLength like the Python runtime. */
export class TextEncoder_ {
  constructor(tokenizerJson, maxLength) {
    this.tokenizer = new Tokenizer(tokenizerJson, {});
    this.maxLength = maxLength;
    this.padId = 0;
    for (const token of PAD_TOKENS) {
      const id = this.tokenizer.token_to_id(token);
      if (id !== undefined && id !== null) {
        this.padId = id;
        break;
      }
    }
    // Special tokens the post-processor wraps around a single text (e.g. [CLS] ... [SEP]).
    const bare = this.tokenizer.encode('a', { add_special_tokens: false }).ids;
    const full = this.tokenizer.encode('a', { add_special_tokens: true }).ids;
    const at = indexOfRun(full, bare);
    this.prefix = at < 0 ? [] : full.slice(0, at);
    this.suffix = at < 0 ? [] : full.slice(at + bare.length);
  }

  ids(text) {
    const full = this.tokenizer.encode(text, { add_special_tokens: true }).ids;
    if (full.length <= this.maxLength) return full;
    const content = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    const room = Math.max(0, this.maxLength - this.prefix.length - this.suffix.length);
    return [...this.prefix, ...content.slice(0, room), ...this.suffix];
  }
}

function indexOfRun(haystack, needle) {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function checkSpeed(speed, fallback) {
  if (speed === undefined || speed === null) return fallback;
  if (typeof speed !== 'number' || Number.isNaN(speed)) {
    throw new TypeError(`speed must be a number in [0, 1], got ${typeof speed} ${JSON.stringify(speed)}`);
  }
  if (!(speed >= 0 && speed <= 1)) throw new RangeError(`speed must lie in [0, 1] (0 runs every layer), got ${speed}`);
  return speed;
}

function softmax(row) {
  const max = Math.max(...row);
  const exps = row.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** A loaded bundle: the compiled graph in one onnxruntime session, and the tokenizer. */
export class EdgeModel {
  constructor(ort, session, info, encoder, where) {
    this.ort = ort;
    this.session = session;
    this.info = info;
    this.encoder = encoder;
    this.where = where;
    this.labels = info.labels;
    this.numLayers = info.numLayers;
    this.defaultSpeed = info.defaultSpeed;
  }

  /** Run one padded batch: returns {logits (B*C), exitLayer (B), uncertainty (B)}. */
  async runIds(rows, speed) {
    const { ort } = this;
    const batch = rows.length;
    const width = Math.max(1, ...rows.map((r) => r.length));
    const ids = new BigInt64Array(batch * width).fill(BigInt(this.encoder.padId));
    const mask = new BigInt64Array(batch * width);
    rows.forEach((row, i) => {
      row.forEach((id, j) => {
        ids[i * width + j] = BigInt(id);
        mask[i * width + j] = 1n;
      });
    });
    const feeds = {
      [GRAPH_INPUTS[0]]: new ort.Tensor('int64', ids, [batch, width]),
      [GRAPH_INPUTS[1]]: new ort.Tensor('int64', mask, [batch, width]),
      [GRAPH_INPUTS[2]]: new ort.Tensor('float32', Float32Array.of(speed), []),
    };
    const out = await this.session.run(feeds);
    return {
      logits: out[GRAPH_OUTPUTS[0]].data,
      exitLayer: out[GRAPH_OUTPUTS[1]].data,
      uncertainty: out[GRAPH_OUTPUTS[2]].data,
    };
  }

  /**
   * Classify texts; results come back in input order.
   * @param {string|string[]} texts
   * @param {{speed?: number, batchSize?: number}} [options]
   */
  async classify(texts, options = {}) {
    if (typeof texts === 'string') texts = [texts];
    if (!Array.isArray(texts)) throw new TypeError(`texts must be a string or an array of strings, got ${typeof texts}`);
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw new TypeError(`texts[${i}] is ${t === null ? 'null' : typeof t}, not a string`);
    });
    const speed = checkSpeed(options.speed, this.defaultSpeed);
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
    const ids = texts.map((t) => this.encoder.ids(t));
    const order = ids.map((_, i) => i).sort((a, b) => ids[a].length - ids[b].length || a - b);
    const results = new Array(texts.length);
    const classes = this.labels.length;
    for (let start = 0; start < order.length; start += batchSize) {
      const chunk = order.slice(start, start + batchSize);
      const out = await this.runIds(chunk.map((i) => ids[i]), speed);
      chunk.forEach((index, row) => {
        const probs = softmax(Array.from(out.logits.slice(row * classes, (row + 1) * classes)));
        let best = 0;
        probs.forEach((p, c) => { if (p > probs[best]) best = c; });
        results[index] = {
          label: this.labels[best],
          probs: Object.fromEntries(this.labels.map((name, c) => [name, probs[c]])),
          exitLayer: Number(out.exitLayer[row]),
          uncertainty: Number(out.uncertainty[row]),
        };
      });
    }
    return results;
  }

  async release() {
    await this.session.release?.();
  }
}

/**
 * Load a bundle through `readFile(name) -> Promise<Uint8Array>` with the given onnxruntime module.
 * Checks the manifest and the sha256 of every file it reads before any inference.
 */
export async function loadWith(ort, readFile, where, sessionOptions = {}) {
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(await readFile('manifest.json')));
  } catch (err) {
    if (err instanceof SyntaxError) throw new BundleError(`${where}: manifest.json is not valid JSON: ${err.message}`);
    throw new BundleError(`${where}: cannot read manifest.json (${err.message}); is it a bundle written by \`edgekd export\`?`);
  }
  const info = checkManifest(manifest, where);
  const read = async (name) => {
    try {
      return await readFile(name);
    } catch (err) {
      throw new BundleError(`${where}: cannot read ${name} (${err.message})`);
    }
  };
  const [tokenizerBytes, graphBytes] = await Promise.all([read(info.tokenizer), read(info.graph.file)]);
  await checkSha(tokenizerBytes, info.tokenizerSha, info.tokenizer, where);
  await checkSha(graphBytes, info.graph.sha256, info.graph.file, where);
  let encoder;
  try {
    encoder = new TextEncoder_(JSON.parse(new TextDecoder().decode(tokenizerBytes)), info.maxLength);
  } catch (err) {
    throw new BundleError(`${where}: cannot read tokenizer ${info.tokenizer}: ${err.message}`);
  }
  let session;
  try {
    session = await ort.InferenceSession.create(graphBytes, { graphOptimizationLevel: 'all', ...sessionOptions });
  } catch (err) {
    throw new BundleError(`${where}: cannot load ${info.graph.file}: ${err.message}`);
  }
  return new EdgeModel(ort, session, info, encoder, where);
}
