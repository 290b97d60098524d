// The agent-to-operator report format and its strict parser (src/cluster/report.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseReport } from '../../src/cluster/report.js';
import { sourceReport } from '../../support/reports.js';

const report = sourceReport;

describe('report format', () => {
  const good = { node: 'n1', policy: 'p', sources: [report('2001:DB8::1', [22])] };
  test('a valid report parses, addresses normalized', () => {
    assert.equal(parseReport(JSON.stringify(good)).sources[0]!.source, '2001:db8::1');
  });
  test('a node\'s reason for its detection being off is one line of printable text', () => {
    const text = 'boom\u001b[31m\r\nDetecting=True\u0000\u0085\u2028x\u007f';
    assert.equal(parseReport(JSON.stringify({ ...good, detectionOff: text })).detectionOff, 'boom [31m  Detecting=True   x ');
  });
  test('each bad field is named', () => {
    const bad: [unknown, RegExp][] = [
      ['not json', /not JSON/],
      [[], /report: must be an object/],
      [{ ...good, node: '' }, /Error: node:/],
      [{ ...good, sources: [{ ...report('x', []) }] }, /sources\[0\]\.source: must be an IP/],
      [{ ...good, sources: [{ ...report('192.0.2.1', [0]) }] }, /sources\[0\]\.probes\[0\]\.port/],
      [{ ...good, sources: [{ ...report('192.0.2.1', [1]), probes: [{ protocol: 'icmp', port: 1, type: 'syn', time: 1 }] }] }, /protocol/],
      [{ ...good, sources: [{ ...report('192.0.2.1', [1]), probes: [{ protocol: 'tcp', port: 1, type: '$(rm)', time: 1 }] }] }, /unknown probe type/],
      [{ ...good, sources: Array.from({ length: 1001 }, () => report('192.0.2.1', [1])) }, /at most 1000/],
      [{ ...good, sources: [{ ...report('192.0.2.1', [1]), verified: 'yes' }] }, /verified/],
    ];
    for (const [input, message] of bad)
      assert.throws(() => parseReport(typeof input === 'string' ? input : JSON.stringify(input)), message, JSON.stringify(input).slice(0, 80));
  });
  test('random bodies never crash the parser: it returns or throws an Error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ node: 'n', policy: 'p', sources: [v] }))), (text) => {
        try {
          parseReport(text);
        } catch (err) {
          assert.ok(err instanceof Error && err.message.length > 0);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
