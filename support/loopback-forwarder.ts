// Run inside a node's network namespace: listens on 127.0.0.1:PORT there and carries each
// connection over a unix socket to the test process, which connects it to 127.0.0.1:PORT in
// the root namespace. Agents in their namespaces thus reach the API server and the
// operators on loopback, and no traffic leaves loopback. Args: PORT=SOCKET ...
import { connect, createServer } from 'node:net';

for (const mapping of process.argv.slice(2)) {
  const [port, socket] = mapping.split('=');
  createServer((inbound) => {
    const outbound = connect(socket!);
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  }).listen(Number(port), '127.0.0.1', () => process.stdout.write(`${port}\n`));
}
