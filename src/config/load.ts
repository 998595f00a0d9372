import { readFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import { redactText } from '../redact.js';
import { checkConfig, type Problem } from './check.js';
import { formatPath } from './key-path.js';
import { interpolate, type InterpolationProblem } from './interpolate.js';
import { lenientCrossChecks } from './lenient.js';
import { readConfigText } from './read-text.js';
import { configSchema } from './schema.js';
import { connectionUrl } from './url.js';
import type { Config } from './types.js';

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
}

/**
 * Reads, interpolates and validates a config file. Throws one `UserError` (exit 2) that lists every
 * problem as `file: key.path: what is wrong`; never returns a config that did not pass.
 *
 * @example const config = loadConfig('shardctl.yaml');
 */
export function loadConfig(path: string, opts: LoadOptions = {}): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError('config', `${path}: cannot read the config file (${code === 'ENOENT' ? 'no such file' : code})`, {
      hint: 'pass --config FILE or set SHARDCTL_CONFIG',
    });
  }
  return parseConfig(text, path, opts);
}

/** Validates config text (YAML or JSON); `file` names it in messages. */
export function parseConfig(text: string, file = '<inline>', opts: LoadOptions = {}): Config {
  const read = readConfigText(text, file);
  if ('errors' in read) throw configError(file, read.errors);
  return configFromData(read.data, file, opts);
}

/** Validates the data of config text as `readConfigText` read it (an edit that has read it already). */
export function configFromData(raw: unknown, file: string, opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const missing: InterpolationProblem[] = [];
  const data = interpolate(raw, env, missing);
  const secrets = () => collectPasswords(data); // only an error needs them: a message must never echo one
  const lines = missing.map((m) => line(file, m.path, `environment variable ${m.variable} is not set`));
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw configError(file, [`${file}: must be a mapping with source, strategy, shards and tables`]);
  }
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    const overlapsFlagged = prefixOverlap(parsed.error.issues.map((i) => formatPath(i.path as Problem['path'])));
    for (const issue of parsed.error.issues) lines.push(line(file, issue.path as Problem['path'], issueMessage(issue)));
    for (const p of lenientCrossChecks(data, file)) {
      const at = formatPath(p.path);
      if (!overlapsFlagged(at)) lines.push(line(file, p.path, p.message));
    }
    throw configError(file, lines, secrets());
  }
  const { config, problems } = checkConfig(parsed.data, file);
  for (const p of problems) lines.push(line(file, p.path, p.message));
  if (!config || lines.length > 0) throw configError(file, lines, secrets());
  return config;
}

/**
 * Whether a path is a prefix of a flagged one or has one as its prefix (a cross-key problem the
 * schema already reported at or around that key). Sets of prefixes, not a scan of every flagged path
 * per problem: a mapping of 50,000 entries can have as many of each.
 */
function prefixOverlap(flagged: readonly string[]): (at: string) => boolean {
  const exact = new Set(flagged);
  const prefixes = new Set<string>();
  for (const f of flagged) for (let n = 0; n <= f.length; n++) prefixes.add(f.slice(0, n));
  return (at) => {
    if (prefixes.has(at)) return true;
    for (let n = 0; n <= at.length; n++) if (exact.has(at.slice(0, n))) return true;
    return false;
  };
}

function issueMessage(issue: { code: string; message: string; keys?: string[] }): string {
  if (issue.code === 'unrecognized_keys' && issue.keys) {
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  const m = /^Invalid input: expected (\w+), received undefined$/.exec(issue.message);
  if (m) return `is required (${m[1]})`;
  if (issue.message.startsWith('Invalid input: expected')) return issue.message.replace('Invalid input: expected', 'expected');
  return issue.message.replace(/^Too (big|small): /, (_, w: string) => `too ${w}: `);
}

function line(file: string, path: Problem['path'], message: string): string {
  return `${file}: ${formatPath(path) || '(top level)'}: ${message}`;
}

export { formatPath };

function configError(file: string, lines: string[], secrets: string[] = []): UserError {
  const safe = [...new Set(lines.map((l) => redactText(l, secrets)))];
  const head = safe.length === 1 ? safe[0]! : `${file}: ${safe.length} problems in the configuration`;
  return new UserError('config', head, { details: safe.length === 1 ? [] : safe });
}


/** Passwords found in any URL-looking value, so a message can never echo one. */
function collectPasswords(data: unknown, out: string[] = []): string[] {
  if (typeof data === 'string') {
    // a URL holds a password only in user info, which ends at an '@': other strings need no URL parse
    if (!data.includes('@')) return out;
    try {
      const p = connectionUrl(data).password;
      if (p) out.push(decodeURIComponent(p));
    } catch {
      /* not a URL */
    }
  } else if (data && typeof data === 'object') {
    for (const v of Object.values(data)) collectPasswords(v, out);
  }
  return out;
}
