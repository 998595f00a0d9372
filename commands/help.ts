import type { Command } from 'commander';

/**
 * What `--help` shows after the options: a few exact command lines and the exit codes, the API a CI
 * job or cron relies on. One table, so every command has both.
 */
const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  route: ['shardctl route 42 1337', 'shardctl route --lat 37.5665 --lng 126.978 --json'],
  plan: ['shardctl plan', 'shardctl plan --out plan.json', 'shardctl plan --propose-mapping --shards 6'],
  migrate: ['shardctl migrate --dry-run', 'shardctl migrate --plan plan.json --concurrency 4', 'shardctl migrate --follow --throttle-lag 30s', 'shardctl migrate --abandon'],
  cutover: ['shardctl cutover --timeout 60s --max-lag 5s --reverse', 'shardctl cutover --finish'],
  throttle: ['shardctl throttle on --for 10m', 'shardctl throttle off'],
  rollback: ['shardctl rollback --follow', 'shardctl rollback --timeout 2m'],
  verify: ['shardctl verify', 'shardctl verify --units 7,42 --junit verify.xml', 'SHARDCTL_JSON=1 shardctl verify --quiet'],
  rebalance: ['shardctl rebalance', 'shardctl rebalance --apply --concurrency 4'],
  'add-shard': ["shardctl add-shard --id s4 --primary 'postgres://app:${S4_PASSWORD}@shard4:5432/pos'", "shardctl add-shard --id s4 --primary 'postgres://app@shard4:5432/pos' --apply"],
  'remove-shard': ['shardctl remove-shard s4', 'shardctl remove-shard s4 --apply'],
  pin: ['shardctl pin 7 s3', 'shardctl pin 7 s3 --apply'],
  unpin: ['shardctl unpin 7', 'shardctl unpin 7 --apply'],
  set: ['shardctl mapping set 8330e1fffffffff s2 --region seoul', 'shardctl mapping set 8330e1fffffffff s2 --status read-only --apply'],
  failover: ['shardctl failover s1', 'shardctl failover s1 --apply --max-lag-seconds 5s --max-lag-bytes 16MB'],
  resolve: ['shardctl resolve'],
  health: ['shardctl health --quiet', 'shardctl health --prometheus --timeout 2s', 'shardctl health --textfile /var/lib/node_exporter/shardctl.prom --lag-warning 30s --lag-bytes-critical 1GB'],
  demo: ['npx shardctl demo', 'shardctl demo --strategy h3 --keep', 'shardctl demo --stop /tmp/shardctl-fleet-XXXX'],
};

const EXITS = `Exit codes:
  0    done, and exact (a preview: shown, nothing changed)
  1    finished, but something differs or failed (units that did not match or could not move)
  2    bad usage or configuration
  3    could not proceed (a server unreachable, the lock held, a state that needs a decision)
  130  interrupted (run the same command again to resume)`;

const HEALTH_EXITS = `Exit codes (monitoring convention):
  0  OK
  1  WARNING
  2  CRITICAL
  3  UNKNOWN (the check itself could not run: bad usage or config included)`;

/** Adds examples and exit codes to the help of every command that has examples. */
export function addHelpTexts(program: Command): void {
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const cmd of all(program)) {
    const examples = EXAMPLES[cmd.name()];
    if (!examples) continue;
    const exits = cmd.name() === 'health' ? HEALTH_EXITS : EXITS;
    cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n\n${exits}\n`);
  }
}
