// Policy files (src/policy/load.ts): YAML read into a document, defaults filled, each problem
// named with its file and line (the problems themselves: policy-validate.test.ts).
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

test('each problem is placed on the line of its field', () => {
  const problems = problemsOf(`spec:
  tcp:
    ports: [1, 70000]
    mode: sneaky
  trigger:
    window: forever
  response:
    command: ["/bin/echo", "$HOST$"]
  extra: true
`);
  // Line and field only: the messages are validation's (policy-validate.test.ts).
  assert.deepEqual(problems.map((p) => p.slice(0, p.indexOf(': '))).sort(), [
    '3:spec.tcp.ports[1]',
    '4:spec.tcp.mode',
    '6:spec.trigger.window',
    '8:spec.response.command[1]',
    '9:spec.extra',
  ]);
});

test('a cross-field problem is placed on the line of the field it names', () => {
  assert.deepEqual(problemsOf('spec:\n  response:\n    udp: command\n'), ['3:spec.response.command: is required when response.udp is "command"']);
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
