// The classic history and blocked file lines (src/respond/classic-files.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classicBlockLine } from '../../src/respond/classic-files.js';

test('classic history line format (what fail2ban and logcheck match): the name, then the address after the slash', () => {
  const t = new Date(2026, 10, 21, 0, 46, 40).getTime();
  assert.equal(
    classicBlockLine(t, '198.18.0.9', '198.18.0.9', 79, 'tcp'),
    `${Math.floor(t / 1000)} - 11/21/2026 00:46:40 Host: 198.18.0.9/198.18.0.9 Port: 79 TCP Blocked\n`,
  );
  // fail2ban's portsentry filter bans what follows the slash: \/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$
  assert.match(classicBlockLine(t, 'h.example', '2001:db8::1', 7, 'udp').trimEnd(), /Host: h\.example\/2001:db8::1 Port: [0-9]+ (TCP|UDP) Blocked$/);
});
