/**
 * One item's result. Which fields are set follows the bundle's problem type (`model.problem`):
 * single-label: `label` + `probs` (softmax); multi-label: `labels` + `probs` (independent sigmoids);
 * regression: `score`; token-classification: `entities` (and `words` on request). `probs` maps every label name
 * to its probability, in the order of `model.labels`.
 */
/** One entity of a token-classification answer: offsets into the text (text.slice(start, end) === word). */
export interface Entity {
  entity_group: string;
  /** The mean of its words' tag probabilities. */
  score: number;
  word: string;
  start: number;
  end: number;
}

/** One word of a token-classification answer (`words: true`), with its tag as BIO is read (B- starts). */
export interface TaggedWord {
  word: string;
  start: number;
  end: number;
  tag: string;
  score: number;
}

export interface Prediction {
  /** single-label: the most probable class. */
  label?: string;
  /** multi-label: the labels whose probability reaches the threshold (maybe none). */
  labels?: string[];
  /** regression: the predicted value, in the training data's units. */
  score?: number;
  /** token-classification: the entities found, in text order. */
  entities?: Entity[];
  /** token-classification with `words: true`: every word and its tag. */
  words?: TaggedWord[];
  probs?: Record<string, number>;
  /** 1-based layer whose exit head decided. */
  exitLayer: number;
  /** The exit rule's uncertainty at that layer, in [0, 1]. */
  uncertainty: number;
}

/** A text, or for a bundle made from text pairs a pair: [text, textPair] or {text, textPair}. */
export type Item = string | [string, string] | { text: string; textPair?: string };

export interface ClassifyOptions {
  /** Exit threshold in [0, 1]; 0 runs every layer. Default: the bundle's calibrated speed. */
  speed?: number;
  /** Texts per onnxruntime run (texts are sorted by length into batches). Default 32. */
  batchSize?: number;
  /** Multi-label bundles: a label is on at probability >= threshold (default: the bundle's, else 0.5). */
  threshold?: number;
  /** Token-classification bundles: also return every word's tag (`words`). */
  words?: boolean;
}

export interface LoadOptions {
  /** Browser only: 'auto' (WebGPU where available, else wasm), 'wasm' or 'webgpu'. */
  device?: 'auto' | 'wasm' | 'webgpu';
  /** Browser only: wasm threads (0: onnxruntime-web's default; -1: every core). */
  threads?: number;
  /** Browser only: run inference in a worker. */
  proxy?: boolean;
  /** Passed to onnxruntime's InferenceSession.create. */
  sessionOptions?: Record<string, unknown>;
}

export declare class EdgeModel {
  readonly labels: string[];
  readonly problem: 'single-label' | 'multi-label' | 'regression' | 'token-classification';
  readonly numLayers: number;
  readonly defaultSpeed: number;
  classify(texts: Item | Item[], options?: ClassifyOptions): Promise<Prediction[]>;
  release(): Promise<void>;
}

export declare class EdgeKDError extends Error {}
/** The bundle is missing, damaged (sha256 mismatch), or written by a newer edgekd. */
export declare class BundleError extends EdgeKDError {}
export declare const SCHEMA_VERSION: number;
export declare const PROBLEMS: string[];

/** Load a bundle: a folder path or file:// URL in Node, a URL in the browser. Checks every file's sha256. */
export declare function load(bundle: string | URL, options?: LoadOptions): Promise<EdgeModel>;
