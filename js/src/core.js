// The part of the runtime shared by Node and the browser: the manifest contract,
// integrity checks, tokenization and batched classification with the compiled graph.
// A platform entry (node.js, browser.js) supplies onnxruntime and a way to read files.

import { Tokenizer } from '@huggingface/tokenizers';

import { encodeWords, tagAnswer } from './tokens.js';

// the newest manifest this runtime reads (4: the task record nested in `task`; 3: text pairs, problem types)
export const SCHEMA_VERSION = 4;
// single-label: softmax over classes; multi-label: independent sigmoids; regression: one value;
// token-classification: a tag softmax per token, answered as entities
export const PROBLEMS = ['single-label', 'multi-label', 'regression', 'token-classification'];
export const GRAPH_INPUTS = ['input_ids', 'attention_mask', 'speed'];
export const PAIR_INPUT = 'token_type_ids'; // a bundle of text pairs (manifest.text_pair) takes it too
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

// the graph of a folder packed for the Hugging Face tools lies one folder down (onnx/model.onnx)
function safeGraphName(name) {
  const parts = typeof name === 'string' ? name.split('/') : [];
  return parts.length >= 1 && parts.length <= 2 && parts.every(safeName);
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
  const problems = [];
  const listed = version >= 4 ? manifest.parts : manifest.stages; // schemas 1-3 called the graph list `stages`
  const parts = Array.isArray(listed) ? listed : [];
  const graph = parts.find((s) => s && s.kind === 'compiled');
  if (!graph) {
    problems.push('no compiled graph (model.onnx) is listed; re-export the bundle with edgekd >= 0.2 (`edgekd export`)');
  } else if (!safeGraphName(graph.file)) {
    problems.push(`the compiled graph's file name ${JSON.stringify(graph.file)} is not a plain file name`);
  }
  if (graph && !/^[0-9a-f]{64}$/.test(String(graph.sha256))) problems.push('the compiled graph has no valid sha256');
  // schema 4 nests what the model answers in `task` (runtime/task.py); schemas 1-3 kept it at the top level
  const task = version >= 4 ? manifest.task : manifest;
  if (task === null || typeof task !== 'object' || Array.isArray(task)) {
    throw new BundleError(`${where}: manifest.json has no task record (schema ${version} nests it in "task")`);
  }
  const labels = task.labels;
  const problem = task.problem ?? 'single-label';
  if (!PROBLEMS.includes(problem)) problems.push(`problem ${JSON.stringify(problem)} is not one of ${PROBLEMS.join(', ')}`);
  const fewest = problem === 'single-label' || problem === 'token-classification' ? 2 : 1;
  if (!Array.isArray(labels) || labels.length < fewest || !labels.every((l) => typeof l === 'string')) {
    problems.push(`labels must be a list of at least ${fewest === 2 ? 'two names' : 'one name'}`);
  }
  const thresholds = task.thresholds ?? null;
  if (thresholds !== null && (!Array.isArray(thresholds) || !Array.isArray(labels) || thresholds.length !== labels.length ||
      !thresholds.every((t) => typeof t === 'number' && t > 0 && t < 1))) {
    problems.push('thresholds must hold one number in (0, 1) per label');
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
    textPair: task.text_pair === true,
    problem,
    thresholds: thresholds ?? (Array.isArray(labels) ? labels.map(() => 0.5) : []),
    // pack --target hf: `speed` is an initializer holding defaultSpeed, which onnxruntime-node and -web run
    // whatever is fed for it
    speedInGraph: manifest.target === 'hf',
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

  /**
   * A text pair as the Python runtime encodes it: the tokenizer's own pair template (read off a probe pair),
   * each text truncated longest-first to maxLength as Hugging Face tokenizers does, and the template's segment
   * ids. An empty second text stays a pair (its separators are kept). Returns {ids, types}.
   */
  pairIds(text, textPair) {
    const t = this.pairTemplate();
    const budget = Math.max(0, this.maxLength - t.special);
    let a = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    let b = this.tokenizer.encode(textPair, { add_special_tokens: false }).ids;
    if (a.length + b.length > budget) {
      // the shorter keeps up to half the budget (the first on a tie), the other the rest
      if (a.length > b.length) {
        b = b.slice(0, Math.min(b.length, Math.floor(budget / 2)));
        a = a.slice(0, budget - b.length);
      } else {
        a = a.slice(0, Math.min(a.length, Math.floor(budget / 2)));
        b = b.slice(0, budget - a.length);
      }
    }
    const parts = [[t.prefix, t.prefixTypes], [a, a.map(() => t.typeA)], [t.middle, t.middleTypes],
      [b, b.map(() => t.typeB)], [t.suffix, t.suffixTypes]];
    return { ids: parts.flatMap(([ids]) => ids), types: parts.flatMap(([, types]) => types) };
  }

  pairTemplate() {
    if (this._pair) return this._pair;
    const bare = this.tokenizer.encode('a', { add_special_tokens: false }).ids;
    const full = this.tokenizer.encode('a', { text_pair: 'a', add_special_tokens: true, return_token_type_ids: true });
    const first = indexOfRun(full.ids, bare);
    const second = first < 0 ? -1 : first + bare.length + indexOfRun(full.ids.slice(first + bare.length), bare);
    if (first < 0 || second < first + bare.length) {
      throw new BundleError('cannot read the tokenizer\'s pair template (the probe pair was not found in its encoding)');
    }
    const types = full.token_type_ids ?? full.ids.map(() => 0);
    const cut = (from, to) => [full.ids.slice(from, to), types.slice(from, to)];
    const [prefix, prefixTypes] = cut(0, first);
    const [middle, middleTypes] = cut(first + bare.length, second);
    const [suffix, suffixTypes] = cut(second + bare.length, full.ids.length);
    this._pair = { prefix, prefixTypes, middle, middleTypes, suffix, suffixTypes, typeA: types[first],
      typeB: types[second], special: prefix.length + middle.length + suffix.length };
    return this._pair;
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

function sigmoid(x) {
  return 0.5 * (1 + Math.tanh(0.5 * x)); // finite for any x, as runtime/exits.py computes it
}

function checkThreshold(threshold, problem) {
  if (threshold === undefined || threshold === null) return null;
  if (problem !== 'multi-label') throw new TypeError(`threshold applies to multi-label bundles; this one is ${problem}`);
  if (typeof threshold !== 'number' || !(threshold > 0 && threshold < 1)) {
    throw new RangeError(`threshold must be a number in (0, 1), got ${JSON.stringify(threshold)}`);
  }
  return threshold;
}

export function softmax(row) {
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
    this.problem = info.problem;
    this.numLayers = info.numLayers;
    this.defaultSpeed = info.defaultSpeed;
  }

  /**
   * Run one padded batch: returns {logits (B*C), exitLayer (B), uncertainty (B)}. `typeRows` holds each row's
   * segment ids for a bundle of text pairs.
   */
  async runIds(rows, speed, typeRows = null) {
    const { ort } = this;
    const batch = rows.length;
    const width = Math.max(1, ...rows.map((r) => r.length));
    const ids = new BigInt64Array(batch * width).fill(BigInt(this.encoder.padId));
    const mask = new BigInt64Array(batch * width);
    const types = new BigInt64Array(batch * width);
    rows.forEach((row, i) => {
      row.forEach((id, j) => {
        ids[i * width + j] = BigInt(id);
        mask[i * width + j] = 1n;
        if (typeRows) types[i * width + j] = BigInt(typeRows[i][j]);
      });
    });
    const feeds = {
      [GRAPH_INPUTS[0]]: new ort.Tensor('int64', ids, [batch, width]),
      [GRAPH_INPUTS[1]]: new ort.Tensor('int64', mask, [batch, width]),
    };
    if (!this.info.speedInGraph) feeds[GRAPH_INPUTS[2]] = new ort.Tensor('float32', Float32Array.of(speed), []);
    if (this.info.textPair) feeds[PAIR_INPUT] = new ort.Tensor('int64', types, [batch, width]);
    const out = await this.session.run(feeds);
    return {
      logits: out[GRAPH_OUTPUTS[0]].data,
      exitLayer: out[GRAPH_OUTPUTS[1]].data,
      uncertainty: out[GRAPH_OUTPUTS[2]].data,
    };
  }

  /**
   * Classify texts; results come back in input order. Each result has exitLayer and uncertainty, and by the
   * bundle's problem type (`model.problem`): label + probs (single-label, softmax); labels (the names whose
   * probability reaches the threshold) + probs (multi-label, independent sigmoids); score (regression); entities
   * ({entity_group, score, word, start, end}, offsets into the text: text.slice(start, end) === word) and with
   * `words` every word's {word, start, end, tag, score} (token-classification).
   * @param {string|string[]} texts
   * @param {{speed?: number, batchSize?: number, threshold?: number, words?: boolean}} [options]
   */
  async classify(texts, options = {}) {
    const items = this.items(texts);
    const speed = checkSpeed(options.speed, this.defaultSpeed);
    if (this.info.speedInGraph && speed !== this.defaultSpeed) {
      throw new RangeError(`this folder (edgekd pack --target hf) holds its speed, ${this.defaultSpeed}, inside ` +
        `${this.info.graph.file}, and onnxruntime in JavaScript runs that one whatever is fed; for speed ${speed} ` +
        'load the bundle `edgekd export` wrote');
    }
    const threshold = checkThreshold(options.threshold, this.problem);
    const thresholds = threshold === null ? this.info.thresholds : this.labels.map(() => threshold);
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be an integer >= 1, got ${batchSize}`);
    const tokens = this.problem === 'token-classification';
    if (options.words && !tokens) throw new TypeError(`words applies to token-classification bundles; this one is ${this.problem}`);
    const encoded = items.map((t) => (tokens ? encodeWords(this.encoder, t)
      : typeof t === 'string' ? { ids: this.encoder.ids(t), types: null } : this.encoder.pairIds(t[0], t[1])));
    const ids = encoded.map((e) => e.ids);
    const order = ids.map((_, i) => i).sort((a, b) => ids[a].length - ids[b].length || a - b);
    const results = new Array(items.length);
    const classes = this.labels.length;
    for (let start = 0; start < order.length; start += batchSize) {
      const chunk = order.slice(start, start + batchSize);
      const out = await this.runIds(chunk.map((i) => ids[i]), speed,
        this.info.textPair ? chunk.map((i) => encoded[i].types) : null);
      const width = Math.max(1, ...chunk.map((i) => ids[i].length)); // tags: (B, width, C)
      chunk.forEach((index, row) => {
        const at = (from) => Array.from(out.logits.slice(from * classes, (from + 1) * classes));
        results[index] = {
          ...(tokens ? tagAnswer(items[index], encoded[index], (t) => at(row * width + t), this.labels, options.words)
            : this.answer(at(row), thresholds)),
          exitLayer: Number(out.exitLayer[row]),
          uncertainty: Number(out.uncertainty[row]),
        };
      });
    }
    return results;
  }

  /** One row's deciding-head outputs as the answer of this bundle's problem type (see classify). */
  answer(logits, thresholds) {
    if (this.problem === 'regression') return { score: logits[0] };
    if (this.problem === 'multi-label') {
      const probs = logits.map(sigmoid);
      return {
        labels: this.labels.filter((_, c) => probs[c] >= thresholds[c]),
        probs: Object.fromEntries(this.labels.map((name, c) => [name, probs[c]])),
      };
    }
    const probs = softmax(logits);
    let best = 0;
    probs.forEach((p, c) => { if (p > probs[best]) best = c; });
    return { label: this.labels[best], probs: Object.fromEntries(this.labels.map((name, c) => [name, probs[c]])) };
  }

  /**
   * `texts` as the items this bundle takes: strings, or for a bundle of text pairs [text, textPair] / {text,
   * textPair} (an empty second text is a pair); an item of the wrong shape is refused naming its index.
   */
  items(texts) {
    if (typeof texts === 'string' || (texts && !Array.isArray(texts) && typeof texts === 'object')) texts = [texts];
    if (!Array.isArray(texts)) throw new TypeError(`texts must be an item or an array of items, got ${typeof texts}`);
    const pair = this.info.textPair;
    return texts.map((t, i) => {
      if (t !== null && typeof t === 'object' && !Array.isArray(t)) {
        if (typeof t.text !== 'string' || (t.textPair !== undefined && typeof t.textPair !== 'string')) {
          throw new TypeError(`texts[${i}] is an object; a pair is {text: string, textPair: string}`);
        }
        t = [t.text, t.textPair ?? ''];
      }
      if (Array.isArray(t)) {
        if (t.length !== 2 || !t.every((x) => typeof x === 'string')) {
          throw new TypeError(`texts[${i}] is an array of ${t.length} items; a pair is [text, textPair], two strings`);
        }
        if (!pair) throw new TypeError(`texts[${i}] is a pair, but this bundle classifies single texts: give each item as one string`);
        return t;
      }
      if (typeof t !== 'string') throw new TypeError(`texts[${i}] is ${t === null ? 'null' : typeof t}, not ${pair ? 'a [text, textPair] pair' : 'a string'}`);
      if (pair) throw new TypeError(`texts[${i}] is a single string, but this bundle classifies text pairs: give [text, textPair] (the second may be empty)`);
      return t;
    });
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
    // logSeverityLevel 3: errors only (an hf folder's `speed` initializer would log a warning at every load)
    session = await ort.InferenceSession.create(graphBytes, { graphOptimizationLevel: 'all', logSeverityLevel: 3,
      ...sessionOptions });
  } catch (err) {
    throw new BundleError(`${where}: cannot load ${info.graph.file}: ${err.message}`);
  }
  return new EdgeModel(ort, session, info, encoder, where);
}
