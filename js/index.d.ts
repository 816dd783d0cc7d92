/** One text's result. `probs` maps every label name to its probability, in the order of `model.labels`. */
export interface Prediction {
  label: string;
  probs: Record<string, number>;
  /** 1-based layer whose exit head decided. */
  exitLayer: number;
  /** Normalized entropy of the deciding head, in [0, 1]. */
  uncertainty: number;
}

export interface ClassifyOptions {
  /** Exit threshold in [0, 1]; 0 runs every layer. Default: the bundle's calibrated speed. */
  speed?: number;
  /** Texts per onnxruntime run (texts are sorted by length into batches). Default 32. */
  batchSize?: number;
}

export interface LoadOptions {
  /** Browser only: 'auto' (WebGPU where available, else wasm), 'wasm' or 'webgpu'. */
  device?: 'auto' | 'wasm' | 'webgpu';
  /** Passed to onnxruntime's InferenceSession.create. */
  sessionOptions?: Record<string, unknown>;
}

export declare class EdgeModel {
  readonly labels: string[];
  readonly numLayers: number;
  readonly defaultSpeed: number;
  classify(texts: string | string[], options?: ClassifyOptions): Promise<Prediction[]>;
  release(): Promise<void>;
}

export declare class EdgeKDError extends Error {}
/** The bundle is missing, damaged (sha256 mismatch), or written by a newer edgekd. */
export declare class BundleError extends EdgeKDError {}
export declare const SCHEMA_VERSION: number;

/** Load a bundle: a folder path or file:// URL in Node, a URL in the browser. Checks every file's sha256. */
export declare function load(bundle: string | URL, options?: LoadOptions): Promise<EdgeModel>;
