import { Document } from 'yaml';

/** A jump config of n pins `tenant-i: s(i % 3)` (passwords as ${PW}), as an object. */
export function pinsObject(n: number) {
  return {
    source: 'postgres://app:${PW}@mono:5432/app',
    strategy: { kind: 'jump', key: 'tenant_id', pins: Object.fromEntries(Array.from({ length: n }, (_, i) => [`tenant-${i}`, `s${i % 3}`])) },
    shards: [0, 1, 2].map((i) => ({ id: `s${i}`, primary: `postgres://app:\${PW}@shard${i}:5432/app` })),
    tables: [{ name: 'accounts', key: 'tenant_id' }],
  };
}
/** The text yaml writes for `pinsObject(n)` (Document.toString is itself seconds for 100,000 pins). */
export function pinsYaml(n: number): string {
  const obj = pinsObject(n);
  const pins = Object.entries(obj.strategy.pins).map(([t, s]) => `    ${t}: ${s}\n`).join('');
  const small = new Document({ ...obj, strategy: { ...obj.strategy, pins: { PINS: 'x' } } }).toString();
  return small.replace('    PINS: x\n', pins);
}
