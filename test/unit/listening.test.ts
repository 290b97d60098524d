// The ports-in-use table from /proc/net (src/detect/listening.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { markPortsInUse } from '../../src/detect/listening.js';

test('ports in use come from /proc/net tables: TCP LISTEN, UDP any', () => {
  const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
`;
  const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
`;
  const udp = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2 0 0
`;
  const ports = { tcp: new Uint8Array(65536), udp: new Uint8Array(65536) };
  markPortsInUse(tcp, 'tcp', ports.tcp);
  markPortsInUse(tcp6, 'tcp', ports.tcp);
  markPortsInUse(udp, 'udp', ports.udp);
  markPortsInUse('garbage\nwithout: fields\n', 'udp', ports.udp);
  assert.deepEqual([...ports.tcp.keys()].filter((p) => ports.tcp[p]), [22, 80], 'established 8080 is not listening');
  assert.deepEqual([...ports.udp.keys()].filter((p) => ports.udp[p]), [68]);
});
