// A test entry to the CLI: `node dist/test/helpers/faulty-cli.js <point> <shardctl arguments…>` runs the
// normal program with a hook that kills the process (SIGKILL, no cleanup) when a move reaches
// <point> (a MovePoint: a journaled step such as `fenced`, or `fencing`, `slot`, `copy`, `stream`,
// `source-fencing`), to prove that running the same command again completes the move.
import { main } from '../../commands/cli.js';
import type { MovePoint } from '../../src/index.js';

const [point, ...args] = process.argv.slice(2);
// `node --test dist/test/` loads every file under test/, this one too, without arguments: nothing to run then
if (point !== undefined) process.exitCode = await main([process.argv[0]!, 'shardctl', ...args], {
  onMovePoint: (at: MovePoint) => {
    if (at === point) process.kill(process.pid, 'SIGKILL');
  },
});
