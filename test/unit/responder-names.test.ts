// Which reverse-DNS answers the responder writes as names (src/respond/responder.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSafeName } from '../../src/respond/responder.js';

test('a PTR answer is a name only when it is no address literal and fits a line', () => {
  for (const name of ['scanner.example', 'a-1.b2.example', 'localhost', 'x1'])
    assert.equal(isSafeName(name), true, name);
  for (const name of ['192.0.2.1', '10.1', '3221225985', '0x7f.1', 'evil.example.1', 'a b', 'evil.example\nHost: 1.2.3.4', '-a.example', ''])
    assert.equal(isSafeName(name), false, JSON.stringify(name));
});
