// An address read from a reader's buffer (src/net/address.ts) keeps its own bytes: the raw
// reader hands every batch of records over in the same buffer, and a block's kernel entry is
// written from the address's bytes, possibly after the next batch came in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressAt } from '../../src/net/address.js';
import { elementsOf } from '../../src/respond/firewall/nft-set-elements.js';

test("an address read from a reused buffer keeps its bytes when the buffer is written again (the next batch's sources)", () => {
  const records = Buffer.alloc(32);
  records.set([198, 51, 100, 7], 0);
  records.set([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 7], 16);
  const v4 = addressAt(records, 0, 4);
  const v6 = addressAt(records, 16, 6);
  records.fill(0xcb); // the next batch: a source an attacker chose
  assert.equal(v4.text, '198.51.100.7');
  assert.deepEqual([...v4.bytes], [198, 51, 100, 7], 'the bytes a block is written from are the address the text names');
  assert.deepEqual([...elementsOf(v4).start], [198, 51, 100, 7]);
  assert.deepEqual([...v6.bytes], [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 7]);
});
