import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

/** Tests run compiled from dist/test; data files stay in the source tree. */
export const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');
export const repoPath = (p: string) => resolve(repoRoot, p);
