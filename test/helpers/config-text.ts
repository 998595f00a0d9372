import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { readConfigText } from '../../src/config/read-text.js';
import { UserError } from '../../src/index.js';

/**
 * Config text reads as the `yaml` package's full parse reads it (its own duplicate-key check on):
 * the same data, or an error where it refuses the text. Returns yaml's data (undefined if refused).
 */
export function assertReadsAsYaml(text: string): unknown {
  let oracle: unknown;
  let oracleFails = false;
  try {
    oracle = parse(text, { uniqueKeys: true });
  } catch {
    oracleFails = true;
  }
  const got = readConfigText(text, 'f');
  if (oracleFails) assert.ok('errors' in got, 'the full parser refuses it: so must we');
  else assert.deepEqual(got, { data: oracle });
  return oracle;
}

/** The lines of the refusal of config text (a UserError, exit 2): its message, then its details. */
export function configRefusal(text: string, file: string, env: NodeJS.ProcessEnv): string[] {
  try {
    parseConfig(text, file, { env });
  } catch (e) {
    assert.ok(e instanceof UserError, `a UserError, got ${e}`);
    assert.equal(e.exitCode, 2);
    return [e.message, ...e.details];
  }
  assert.fail('loaded without error');
}
