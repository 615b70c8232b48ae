import { join } from 'node:path';
import { packageRoot } from '../config/load.js';

/**
 * Where templates, translations and browser assets live. They are not TypeScript, so the compiler
 * does not copy them to dist/; compiled code reads them from the source tree of the package.
 */
export function webRoot(): string {
  return join(packageRoot(), 'src', 'web');
}
