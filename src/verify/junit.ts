import { XMLBuilder } from 'fast-xml-parser';
import { describe, locate } from './report.js';
import type { Finding, VerifyResult } from './types.js';

/**
 * A JUnit XML report of a verify result, for a CI server to render: one <testsuite> per shard, one
 * <testcase> per table in it (classname `shardctl.verify.<shard>`, name the table), a <failure>
 * holding the report lines of every finding there, an <error> for a shard that could not be read.
 * Findings on the source itself (rows that belong to no unit) get a `source` suite.
 *
 * @example writeFileSync('verify.xml', junitXml(await verify(config)));
 */
export function junitXml(r: VerifyResult): string {
  const byCase = new Map<string, Finding[]>();
  const key = (shard: string, table: string) => `${shard}\u0000${table}`;
  for (const f of r.findings) {
    for (const at of locate(f)) {
      const k = key(at.shard, at.table);
      (byCase.get(k) ?? byCase.set(k, []).get(k)!).push(f);
    }
  }
  const errors = new Map(r.errors.map((e) => [e.server, e.message]));
  const seconds = new Map(r.checks.map((c) => [key(c.shard, c.table), c.seconds]));
  const suites = [...(byCaseHas(byCase, 'source') || errors.has('source') ? ['source'] : []), ...r.shards.map((s) => s.shard)];
  let tests = 0;
  let failures = 0;
  let errorCount = 0;
  const testsuite = suites.map((shard) => {
    const error = errors.get(shard);
    const tables = shard === 'source' ? sourceTables(r, byCase) : r.tables;
    let f = 0;
    let e = 0;
    let time = 0;
    const testcase = tables.map((table) => {
      const found = byCase.get(key(shard, table)) ?? [];
      time += seconds.get(key(shard, table)) ?? 0;
      const tc: Record<string, unknown> = {
        '@_classname': `shardctl.verify.${clean(shard)}`,
        '@_name': clean(table),
        '@_time': (seconds.get(key(shard, table)) ?? 0).toFixed(3),
      };
      if (error) {
        e++;
        tc.error = { '@_message': clean(error), '@_type': 'unreadable', '#text': clean(error) };
      } else if (found.length) {
        f++;
        tc.failure = { '@_message': clean(summary(found)), '@_type': [...new Set(found.map((x) => x.kind))].join(','), '#text': clean(text(found, r)) };
      }
      return tc;
    });
    tests += testcase.length;
    failures += f;
    errorCount += e;
    return {
      '@_name': shard === 'source' ? 'source' : `shard ${clean(shard)}`,
      '@_tests': testcase.length,
      '@_failures': f,
      '@_errors': e,
      '@_skipped': 0,
      '@_time': time.toFixed(3),
      testcase,
    };
  });
  const doc = {
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    testsuites: {
      '@_name': 'shardctl verify',
      '@_tests': tests,
      '@_failures': failures,
      '@_errors': errorCount,
      '@_time': r.seconds.toFixed(3),
      testsuite,
    },
  };
  const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true });
  return builder.build(doc) as string;
}

function byCaseHas(byCase: Map<string, Finding[]>, shard: string): boolean {
  return [...byCase.keys()].some((k) => k.startsWith(`${shard}\u0000`));
}

function sourceTables(r: VerifyResult, byCase: Map<string, Finding[]>): string[] {
  const found = r.tables.filter((t) => byCase.has(`source\u0000${t}`));
  return found.length ? found : ['(source)'];
}

function summary(found: Finding[]): string {
  const counts = new Map<string, number>();
  for (const f of found) counts.set(f.kind, (counts.get(f.kind) ?? 0) + 1);
  const words: Record<Finding['kind'], string> = {
    mismatch: 'unit(s) differ from the source',
    misplaced: 'set(s) of rows of units that live elsewhere',
    duplicated: 'unit(s) on more than one shard',
    orphans: 'set(s) of rows that belong to no unit',
    copies: 'cross-shard row(s) not on exactly their units\' shards, or differing',
    reference: 'reference table difference(s)',
    drift: 'schema difference(s)',
  };
  return [...counts].map(([k, c]) => `${c} ${words[k as Finding['kind']]}`).join('; ');
}

function text(found: Finding[], r: VerifyResult): string {
  const limit = 200;
  const lines = found.slice(0, limit).flatMap((f) => {
    const d = describe(f, r);
    return [`${d.tag}: ${d.text}`, `  fix: ${d.fix}`];
  });
  if (found.length > limit) lines.push(`… and ${found.length - limit} more (shardctl verify --json lists all)`);
  return lines.join('\n');
}

/** XML 1.0 cannot carry most control characters, even escaped. */
const clean = (s: string) => s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '?');
