import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { KeyAnalysis, PlanResult } from '../src/index.js';
import { load, output, positiveInt, withGlobalOptions, type GlobalOptions } from './context.js';
import { bar, crossShardLine, formatBytes, formatCount, table } from './ui/format.js';

interface PlanFlags extends GlobalOptions {
  out?: string;
  proposeMapping?: boolean;
  shards?: number;
  top?: number;
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('plan')
      .description('inventory the units, show where each goes, per-shard totals, imbalance and moves')
      .option('--out <file>', 'write the plan as JSON for `migrate --plan`')
      .option('--propose-mapping', 'h3: propose a mapping that keeps neighbouring cells on one shard, balanced by volume')
      .option('--shards <n>', 'with --propose-mapping: how many shards (default: as configured)', positiveInt('--shards'))
      .option('--top <n>', 'how many of the largest units to list (default 10)', positiveInt('--top')),
  ).action(async (opts: PlanFlags) => {
    const config = await load(opts);
    const { plan } = await import('../src/index.js');
    yaml = await import('yaml');
    const out = output(opts);
    const result = await plan(config, {
      proposeShards: opts.proposeMapping ? (opts.shards ?? config.shards.length) : undefined,
    });
    if (opts.out) {
      writeFileSync(opts.out, `${JSON.stringify({ version: 1, config: config.file, createdAt: new Date().toISOString(), ...result }, null, 2)}\n`);
      out.info(`plan written to ${opts.out}; apply it with: shardctl migrate --plan ${opts.out}`);
    }
    out.result(render(result, opts.top ?? 10), result);
  });
}

function render(p: PlanResult, top: number): string {
  const unit = p.strategy === 'jump' ? 'tenants' : 'cells';
  const lines: string[] = [];
  lines.push(`${formatCount(p.units)} ${unit}, ${formatCount(p.rows)} rows, ${formatBytes(p.bytes)} in the sharded tables of the source`);
  lines.push('');
  lines.push(table(['table', 'rows', 'bytes'], p.tables.map((t) => [t.table, formatCount(t.rows), formatBytes(t.bytes)])));
  lines.push('');
  const max = Math.max(...p.shards.map((s) => s.bytes));
  lines.push(
    table(
      ['shard', unit, 'rows', 'bytes', ''],
      p.shards.map((s) => [s.shard, formatCount(s.units), formatCount(s.rows), formatBytes(s.bytes), bar(s.bytes, max, 30)]),
    ),
  );
  lines.push(`imbalance (max/mean bytes): ${p.imbalance.toFixed(2)}`);
  if (p.boundaryShare !== undefined) lines.push(`boundary share (bytes in a cell bordering another shard's cell): ${percent(p.boundaryShare)}`);
  for (const c of p.crossShard) lines.push(`${crossShardLine(c)} (catalog record)`);
  if (top > 0 && p.assignment.length) {
    lines.push('');
    lines.push(`largest ${unit}:`);
    lines.push(table([unit.slice(0, -1), 'shard', 'rows', 'bytes'], p.assignment.slice(0, top).map((a) => [a.unit, a.shard, formatCount(a.rows), formatBytes(a.bytes)])));
  }
  lines.push('');
  if (p.moves.length) {
    lines.push(`moves against current placements (shardctl rebalance applies them):`);
    lines.push(table(['from', 'to', unit, 'rows', 'bytes'], p.moves.map((m) => [m.from, m.to, m.units, formatCount(m.rows), formatBytes(m.bytes)])));
  } else {
    lines.push('no placed unit needs to move');
  }
  if (p.restricted?.length) {
    lines.push('');
    lines.push('cells with a capacity status (read-only: writes refused; full: its shard takes no new cell):');
    lines.push(table(['cell', 'region', 'shard', 'status', 'rows', 'bytes'], p.restricted.map((c) => [c.cell, c.region ?? '', c.shard, c.status, formatCount(c.rows), formatBytes(c.bytes)])));
  }
  if (p.unplaced) lines.push(`${formatCount(p.unplaced)} ${unit} not placed yet (shardctl migrate copies them)`);
  if (p.foreignKeys.length) lines.push('', ...renderKeys(p));
  if (p.proposedMapping) {
    const m = p.proposedMapping;
    lines.push('');
    lines.push('proposed mapping (neighbouring cells kept on one shard, volume balanced):');
    lines.push(table(['shard', 'cells', 'bytes'], m.shards.map((s) => [s.shard, s.cells, formatBytes(s.bytes)])));
    lines.push(table(['', 'imbalance', 'boundary share'], [
      ['current', p.imbalance.toFixed(2), percent(p.boundaryShare ?? 0)],
      ['proposed', m.imbalance.toFixed(2), percent(m.boundaryShare)],
    ]));
    lines.push(`${formatCount(m.moved.cells)} cells (${formatBytes(m.moved.bytes)}) would route to another shard than now`);
    lines.push('');
    lines.push('# paste under strategy: in shardctl.yaml');
    lines.push(mappingYaml(m.mapping));
  }
  return lines.join('\n');
}

const percent = (r: number) => `${(r * 100).toFixed(1)}%`;

const VERDICTS: Record<KeyAnalysis['verdict'], string> = {
  via: 'inside (the via path)',
  reference: 'inside (reference parent)',
  inside: 'inside (no row crosses)',
  crossing: 'CROSSES units',
  unconfigured: 'parent NOT CONFIGURED',
};

/** The schema analysis: one line per foreign key, then each blocking key with its ways forward. */
function renderKeys(p: PlanResult): string[] {
  const rows = p.foreignKeys.map((k) => [
    k.key,
    k.partition ?? k.table,
    `${k.ref}`,
    k.accepted ? `${VERDICTS[k.verdict]}, accepted` : VERDICTS[k.verdict],
    k.verdict === 'crossing' || k.verdict === 'unconfigured' ? formatCount(k.rows) : '',
  ]);
  const lines = ['foreign keys among the configured tables:', table(['key', 'on', 'references', 'verdict', 'rows'], rows)];
  const blocking = p.foreignKeys.filter((k) => k.blocking);
  if (!blocking.length) {
    lines.push(p.foreignKeys.some((k) => k.accepted)
      ? 'accepted crossing keys are left off the shards and not checked there; every other key holds on the shards'
      : 'every foreign key holds on the shards');
    return lines;
  }
  lines.push('', `migrate refuses until ${blocking.length === 1 ? 'this key is' : `these ${blocking.length} keys are`} dealt with:`);
  for (const k of blocking) {
    lines.push(`  ${k.key} on ${k.partition ?? k.table}: ${formatCount(k.rows)} row(s) in ${formatCount(k.units)} unit(s) reference a parent ${k.verdict === 'crossing' ? 'in another unit' : 'shardctl does not copy'}; ways forward:`);
    for (const w of k.waysForward) lines.push(`    - ${w}`);
  }
  return lines;
}

/** The YAML writer, imported when plan runs (not when the CLI starts: test/unit/cli-startup.test.ts). */
let yaml: typeof import('yaml');

/** `mapping:` with one flow mapping per line: `- { cell: 83…, shard: s1 }`. */
function mappingYaml(mapping: readonly object[]): string {
  const { Document, isMap, isSeq } = yaml;
  const doc = new Document({ mapping: [...mapping] });
  const seq = doc.get('mapping', true);
  if (isSeq(seq)) for (const item of seq.items) if (isMap(item)) item.flow = true;
  return doc.toString({ flowCollectionPadding: true }).trimEnd();
}
