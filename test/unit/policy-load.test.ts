// Policy files: loading, validation and the problems named with field path and line (src/policy/load.ts, validate.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultPolicy } from '../../src/policy/default.js';
import { PolicyError, parsePolicyYaml } from '../../src/policy/load.js';

const header = 'apiVersion: kube-portsentry.io/v1alpha1\nkind: PortSentryPolicy\nmetadata:\n  name: t\n';

function problemsOf(yaml: string): string[] {
  try {
    parsePolicyYaml(header + yaml, 'p.yaml');
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    // Lines are counted from the start of `yaml`, after the 4 header lines.
    return err.problems.map((p) => `${(p.line ?? 4) - 4}:${p.path}: ${p.message}`);
  }
  return [];
}

test('a minimal document gets every default', () => {
  const doc = parsePolicyYaml(header, 'p.yaml');
  assert.deepEqual(doc.spec, defaultPolicy().spec);
});

test('every problem is listed, by field path and line', () => {
  const problems = problemsOf(`spec:
  tcp:
    ports: [1, 70000, "30-20", "x"]
    mode: sneaky
  trigger:
    count: -1
    window: forever
  ignore: ["10.0.0.0/8", "10.0.0.0/33", "2001:db8::/200", "nonsense"]
  response:
    tcp: block
    udp: explode
    duration: 2s
    bogus: 1
    command: ["/bin/echo", "$HOST$"]
  extra: true
`);
  const expect = [
    /^4:spec.tcp.mode: must be one of bind, stealth, advanced, off/,
    /^3:spec.tcp.ports\[1\]: port 70000 is not between 1 and 65535/,
    /^3:spec.tcp.ports\[2\]: range "30-20" is reversed/,
    /^3:spec.tcp.ports\[3\]: "x" is not a port/,
    /^6:spec.trigger.count: must be at least 0/,
    /^7:spec.trigger.window: "forever" is not a duration/,
    /^8:spec.ignore\[1\]: "10.0.0.0\/33" is not an IP address or CIDR/,
    /^8:spec.ignore\[2\]: .* is not an IP address or CIDR/,
    /^8:spec.ignore\[3\]: "nonsense" is not an IP address or CIDR/,
    /^11:spec.response.udp: must be one of alert, block, command/,
    /^13:spec.response.bogus: unknown field/,
    /^14:spec.response.command\[1\]: unknown variable \$HOST\$/,
    /^15:spec.extra: unknown field/,
  ];
  for (const re of expect) assert.ok(problems.some((p) => re.test(p)), `${re} not in:\n${problems.join('\n')}`);
  assert.equal(problems.length, expect.length, problems.join('\n'));
});

test('cross-field rules: a command action needs a command', () => {
  const problems = problemsOf('spec:\n  response:\n    udp: command\n');
  assert.deepEqual(problems, ['3:spec.response.command: is required when response.udp is "command"']);
});

test('a command program cannot be a substituted value', () => {
  const problems = problemsOf('spec:\n  response:\n    command: ["$TARGET$"]\n');
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /program \(first element\) cannot contain a variable/);
});

test('wrong document kinds and YAML syntax errors are named with their line', () => {
  assert.match(problemsOf('spec: [1, 2')[0]!, /YAML syntax/);
  const wrong = (() => {
    try {
      parsePolicyYaml('apiVersion: v1\nkind: ConfigMap\n', 'cm.yaml');
    } catch (err) {
      return (err as Error).message;
    }
    return '';
  })();
  assert.match(wrong, /cm.yaml:1:\d+: apiVersion: must be one of kube-portsentry.io\/v1alpha1/);
  assert.match(wrong, /cm.yaml:2:\d+: kind: must be one of PortSentryPolicy/);
});
