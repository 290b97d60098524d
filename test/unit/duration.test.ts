// Durations (src/policy/duration.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration } from '../../src/policy/duration.js';

test('durations', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  for (const bad of ['', '1', '1d', '-1s', '1.5h', 'h']) assert.equal(parseDuration(bad), null, bad);
});
