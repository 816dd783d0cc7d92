// Node entry: onnxruntime-node, files from a bundle folder (or a file:// URL).
import { readFile } from 'node:fs/promises';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';

import { BundleError, loadWith } from './core.js';

export { BundleError, EdgeKDError, EdgeModel, PROBLEMS, SCHEMA_VERSION, checkManifest } from './core.js';

/**
 * Load a bundle folder written by `edgekd export`.
 * @param {string|URL} bundle folder path or file:// URL
 * @param {{sessionOptions?: object}} [options] passed to onnxruntime's InferenceSession.create
 */
export async function load(bundle, options = {}) {
  const dir = bundle instanceof URL || String(bundle).startsWith('file:') ? fileURLToPath(bundle) : String(bundle);
  let stat;
  try {
    stat = await lstat(dir);
  } catch {
    throw new BundleError(`${dir} is not a bundle folder (no such directory)`);
  }
  if (!stat.isDirectory()) throw new BundleError(`${dir} is not a bundle folder`);
  const read = async (name) => {
    const file = path.join(dir, name);
    if ((await lstat(file)).isSymbolicLink()) throw new Error('a symbolic link; refusing to follow it');
    return new Uint8Array(await readFile(file));
  };
  return loadWith(ort, read, dir, { executionMode: 'sequential', ...(options.sessionOptions ?? {}) });
}
