// The text and classic log formats, from the records the sentry writes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatClassic, formatText } from '../../src/log/formats.js';

const base = { level: 'info', time: '2026-11-30T12:00:01.234Z', pid: 7, name: 'kube-portsentry' };

test('text: time, level, message, then the fields as key=value', () => {
  assert.equal(
    formatText({ ...base, level: 'warn', msg: 'scan detected: blocking', source: '198.18.0.1', port: 79, ports: ['tcp/79'], until: '2026-11-30 13:00' }),
    '12:00:01.234 WARN  scan detected: blocking source=198.18.0.1 port=79 ports=["tcp/79"] until="2026-11-30 13:00"',
  );
});

test('classic: PortSentry\'s lines (the examples of issue 15 among them)', () => {
  const c = (r: Record<string, unknown>) => formatClassic({ ...base, ...r });
  assert.deepEqual(c({ msg: 'sentry ready' }), ['adminalert: PortSentry is now active and listening.']);
  assert.deepEqual(c({ msg: 'attackalert: TCP SYN/Normal scan from host: 10.0.0.121/10.0.0.121 to TCP port: 594' }), [
    'attackalert: TCP SYN/Normal scan from host: 10.0.0.121/10.0.0.121 to TCP port: 594',
  ]);
  assert.deepEqual(c({ msg: 'attackalert: Host: 10.0.0.121/10.0.0.121 is already blocked Ignoring' }), ['attackalert: Host: 10.0.0.121/10.0.0.121 is already blocked Ignoring']);
  assert.deepEqual(c({ msg: 'watching ports', protocol: 'tcp', mode: 'bind', ports: [1, 11] }), [
    'adminalert: Going into listen mode on TCP port: 1',
    'adminalert: Going into listen mode on TCP port: 11',
  ]);
  assert.deepEqual(c({ msg: 'watching ports', protocol: 'udp', mode: 'advanced', ports: 1019 }), ['adminalert: Advanced mode will monitor 1019 UDP ports']);
  assert.deepEqual(
    c({ msg: 'response in place', source: '10.0.0.121', done: ['firewall nftables', 'route ip route replace blackhole 10.0.0.121', 'hosts-deny ALL: 10.0.0.121', 'command /bin/notify 10.0.0.121'] }),
    [
      'attackalert: Host 10.0.0.121 has been blocked via nftables firewall set',
      'attackalert: Host 10.0.0.121 has been blocked via dropped route using command: "ip route replace blackhole 10.0.0.121"',
      'attackalert: Host 10.0.0.121 has been blocked via wrappers with string: "ALL: 10.0.0.121"',
      'attackalert: External command run for host: 10.0.0.121 using command: "/bin/notify 10.0.0.121"',
    ],
  );
  assert.deepEqual(c({ msg: 'scan detected', reason: 'policy', protocol: 'udp', source: '10.0.0.121' }), ['attackalert: Ignoring UDP response per configuration file setting.']);
  assert.deepEqual(c({ msg: 'scan detected: blocking', source: '10.0.0.121' }), [], 'said by the attackalert and response lines already');
  assert.deepEqual(c({ level: 'error', msg: 'action failed', action: 'route', err: 'ip failed' }), ['adminalert: ERROR: action failed (action=route err="ip failed")']);
});
