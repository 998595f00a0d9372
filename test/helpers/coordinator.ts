/**
 * A cross-shard writer run as a child process, so a test can SIGKILL the coordinator mid-commit:
 *   node coordinator.js CONFIG STOP_AT BUMP_ID
 * writes bump BUMP_ID to every shard with crossShard, prints each phase (`prepared <gid>`,
 * `decided <gid>`), and at STOP_AT (prepared | decided | never) stops and waits to be killed.
 */
import { loadConfig } from '../../src/config/load.js';
import { crossShard } from '../../src/two-phase/commit.js';
import { insertBump } from './bumps.js';

const [configPath, stopAt, id] = process.argv.slice(2);
// the test runner also loads every file under dist/test: without arguments, do nothing
if (configPath && stopAt && id) {
  const config = loadConfig(configPath);
  await crossShard(
    config,
    async (tx) => {
      for (const s of config.shards) await insertBump(tx, s.id, Number(id));
    },
    {
      onPhase: async (phase, gid) => {
        process.stdout.write(`${phase} ${gid}\n`);
        if (phase === stopAt) await new Promise(() => setInterval(() => undefined, 1000));
      },
    },
  );
  process.stdout.write('done\n');
}
