// npm run e2e:up / e2e:down: brings the real cluster up (and leaves it running) or removes it.
import { down, up } from './cluster.js';
import { STATE } from './layout.js';

const command = process.argv[2];
if (command === 'up') {
  await up();
  process.stdout.write(`cluster up: ${STATE}/kubectl get nodes; ${STATE}/helm list -A\n`);
} else if (command === 'down') {
  await down();
} else {
  process.stderr.write('usage: cli.js up|down\n');
  process.exit(2);
}
