// npm run e2e:up / e2e:down: brings the real cluster up (and leaves it running) or removes it.
// Either waits while a suite run holds the run lock, so it never tears a running suite's cluster down.
import { down, up } from './cluster.js';
import { STATE } from './layout.js';
import { acquireRunLock } from './run-lock.js';

const command = process.argv[2];
if (command !== 'up' && command !== 'down') {
  process.stderr.write('usage: cli.js up|down\n');
  process.exit(2);
}
const release = await acquireRunLock((l) => process.stdout.write(`# e2e: ${l}\n`));
if (command === 'up') {
  await up();
  process.stdout.write(`cluster up: ${STATE}/kubectl get nodes; ${STATE}/helm list -A\n`);
} else {
  await down();
}
release();
