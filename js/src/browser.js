// Browser entry: onnxruntime-web (WebGPU where the browser offers it, else wasm), files fetched by URL.
import * as ort from 'onnxruntime-web';

import { BundleError, loadWith } from './core.js';

export { BundleError, EdgeKDError, EdgeModel, SCHEMA_VERSION, checkManifest } from './core.js';
export { ort };

async function hasWebGPU() {
  try {
    return Boolean(globalThis.navigator?.gpu && (await globalThis.navigator.gpu.requestAdapter()));
  } catch {
    return false;
  }
}

/**
 * Load a bundle from a URL (the folder written by `edgekd export`, served as static files).
 * @param {string|URL} bundleUrl
 * @param {{device?: 'auto'|'wasm'|'webgpu', sessionOptions?: object}} [options]
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
  const executionProviders = webgpu ? ['webgpu', 'wasm'] : ['wasm'];
  const model = await loadWith(ort, read, base.href, { executionProviders, ...(options.sessionOptions ?? {}) });
  model.device = webgpu ? 'webgpu' : 'wasm';
  return model;
}
