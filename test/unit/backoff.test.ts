// The watch's retry backoff (src/k8s/backoff.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { watchBackoffMs } from '../../src/k8s/backoff.js';

describe('watch retry backoff', () => {
  test('doubles from 0.5 s, never waits more than 15 s, jitter keeps half to all of it', () => {
    assert.equal(watchBackoffMs(0, 0.999999), 500);
    assert.equal(watchBackoffMs(0, 0), 250);
    assert.equal(watchBackoffMs(3, 0.999999), 4000);
    for (let failures = 0; failures < 100; failures++)
      for (const r of [0, 0.5, 0.999999]) assert.ok(watchBackoffMs(failures, r) <= 15_000 && watchBackoffMs(failures, r) >= 250);
    assert.equal(watchBackoffMs(10, 0.999999), 15_000);
    assert.equal(watchBackoffMs(10, 0), 7_500);
  });
});
