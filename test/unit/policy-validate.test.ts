// Policy validation (src/policy/validate.ts): every problem named by its field path, and
// the rules that span fields.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultPolicy } from '../../src/policy/default.js';
import { validateDocument, validateSpec } from '../../src/policy/validate.js';

const document = (spec: unknown) => ({ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'PortSentryPolicy', metadata: { name: 't' }, spec });

function problemsOf(spec: unknown): string[] {
  const result = validateDocument(document(spec));
  return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
}

test('an empty spec gets every default', () => {
  const result = validateDocument(document({}));
  assert.ok(result.ok);
  assert.deepEqual(result.value.spec, defaultPolicy().spec);
});

test('every problem is listed, by field path', () => {
  const problems = problemsOf({
    tcp: { ports: [1, 70000, '30-20', 'x'], mode: 'sneaky' },
    trigger: { count: -1, window: 'forever' },
    ignore: ['10.0.0.0/8', '10.0.0.0/33', '2001:db8::/200', 'nonsense'],
    response: { tcp: 'block', udp: 'explode', duration: '2s', bogus: 1, command: ['/bin/echo', '$HOST$'] },
    extra: true,
  });
  const expect = [
    /^spec.tcp.mode: must be one of bind, stealth, advanced, off/,
    /^spec.tcp.ports\[1\]: port 70000 is not between 1 and 65535/,
    /^spec.tcp.ports\[2\]: range "30-20" is reversed/,
    /^spec.tcp.ports\[3\]: "x" is not a port/,
    /^spec.trigger.count: must be at least 0/,
    /^spec.trigger.window: "forever" is not a duration/,
    /^spec.ignore\[1\]: "10.0.0.0\/33" is not an IP address or CIDR/,
    /^spec.ignore\[2\]: .* is not an IP address or CIDR/,
    /^spec.ignore\[3\]: "nonsense" is not an IP address or CIDR/,
    /^spec.response.udp: must be one of alert, block, command/,
    /^spec.response.bogus: unknown field/,
    /^spec.response.command\[1\]: unknown variable \$HOST\$/,
    /^spec.extra: unknown field/,
  ];
  for (const re of expect) assert.ok(problems.some((p) => re.test(p)), `${re} not in:\n${problems.join('\n')}`);
  assert.equal(problems.length, expect.length, problems.join('\n'));
});

test('cross-field rules: a command action needs a command', () => {
  assert.deepEqual(problemsOf({ response: { udp: 'command' } }), ['spec.response.command: is required when response.udp is "command"']);
});

test('a command program cannot be a substituted value', () => {
  const problems = problemsOf({ response: { command: ['$TARGET$'] } });
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /program \(first element\) cannot contain a variable/);
});

test('a spec on its own is validated under the path it is given', () => {
  const result = validateSpec({ trigger: { count: -1 } }, 'data.policy');
  assert.ok(!result.ok);
  assert.deepEqual(
    result.problems.map((p) => p.path),
    ['data.policy.trigger.count'],
  );
});
