// Browser entry: onnxruntime-web (WebGPU where the browser offers it, else wasm), files fetched by URL.
import * as ort from 'onnxruntime-web';

import { BundleError, loadWith } from './core.js';

export { BundleError, EdgeKDError, EdgeModel, PROBLEMS, SCHEMA_VERSION, checkManifest } from './core.js';
export { ort };

async function hasWebGPU() {
  try {
    return Boolean(globalThis.navigator?.gpu && (await globalThis.navigator.gpu.requestAdapter()));
  } catch {
    return false;
  }
}

/**
 * The wasm backend's thread count: `threads` when given (-1: every logical core the browser reports, up to
 * 8), else 0: onnxruntime-web's own default (half the cores, at most 4: one thread on a 2-core machine).
 * Threads need a cross-origin isolated page (COOP/COEP headers), else onnxruntime-web runs one.
 * benchmarks/browser_options.py measures the choices against Python on the same bundle.
 */
export function wasmThreads(threads) {
  if (threads === undefined || threads === null) return 0;
  if (!Number.isInteger(threads) || threads < -1) {
    throw new RangeError(`threads must be an integer >= -1 (0: onnxruntime-web's default; -1: every core), got ${threads}`);
  }
  return threads === -1 ? Math.max(1, Math.min(8, globalThis.navigator?.hardwareConcurrency ?? 1)) : threads;
}

/**
 * Load a bundle from a URL (the folder written by `edgekd export`, served as static files).
 * @param {string|URL} bundleUrl
 * @param {{device?: 'auto'|'wasm'|'webgpu', threads?: number, proxy?: boolean, sessionOptions?: object}} [options]
 *   threads: wasm threads (see wasmThreads; 0 = onnxruntime-web's default, -1 = every core); proxy: run inference in a worker
 *   (keeps the page responsive; set before the first load, as both are process-wide in onnxruntime-web).
 */
export async function load(bundleUrl, options = {}) {
  const base = new URL(String(bundleUrl).replace(/\/?$/, '/'), globalThis.location?.href);
  const read = async (name) => {
    const response = await fetch(new URL(name, base));
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  const device = options.device ?? 'auto';
  if (!['auto', 'wasm', 'webgpu'].includes(device)) throw new BundleError(`unknown device ${device}; use auto, wasm or webgpu`);
  const webgpu = device === 'webgpu' || (device === 'auto' && (await hasWebGPU()));
  const threads = wasmThreads(options.threads);
  if (threads > 0) ort.env.wasm.numThreads = threads;
  if (options.proxy !== undefined) ort.env.wasm.proxy = Boolean(options.proxy);
  const executionProviders = webgpu ? ['webgpu', 'wasm'] : ['wasm'];
  const model = await loadWith(ort, read, base.href, { executionProviders, ...(options.sessionOptions ?? {}) });
  model.device = webgpu ? 'webgpu' : 'wasm';
  model.wasm = { threads: ort.env.wasm.numThreads ?? 0, proxy: Boolean(ort.env.wasm.proxy),
    crossOriginIsolated: Boolean(globalThis.crossOriginIsolated) };
  return model;
}
