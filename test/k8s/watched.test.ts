// Watched (src/k8s/watched.ts) against the real API server: a collection larger than a list
// page is read in pages, and the watch that follows starts from the listed version, so
// nothing made after the list is missed and nothing listed is reported twice.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { connectApi } from '../../src/k8s/api-connection.js';
import { Watched } from '../../src/k8s/watched.js';
import { createLogger } from '../../src/log/logger.js';
import { eventually } from '../../support/cluster.js';
import { useControlPlane } from '../../support/control-plane.js';

const NS = 'kps-watched';

describe('Watched against the real API server', () => {
  const env = useControlPlane(async (cp) => {
    await cp.kubectl(['create', 'namespace', NS]);
    for (let i = 0; i < 7; i++) await cp.api('POST', `/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `listed-${i}` } });
  });

  test('lists in pages, then watches from the listed version', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    const requests: string[] = [];
    const api = await connectApi(cp.kubeconfig, (verb, resource, code) => requests.push(`${verb} ${resource} ${code}`));
    const added: string[] = [];
    const watched = new Watched<V1ConfigMap>({
      api,
      path: `/api/v1/namespaces/${NS}/configmaps`,
      logger: createLogger('silent'),
      onChange: () => undefined,
      onEvent: (type, cm) => type === 'add' && added.push(cm.metadata!.name!),
      listPage: 3,
    });
    try {
      watched.start();
      await watched.synced;
      assert.deepEqual(watched.list().map((cm) => cm.metadata!.name).sort(), Array.from({ length: 7 }, (_, i) => `listed-${i}`));
      assert.deepEqual(requests.filter((r) => r.startsWith('list ')), ['list configmaps 200', 'list configmaps 200', 'list configmaps 200'], '7 objects in pages of 3');
      await cp.api('POST', `/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after' } });
      await eventually('the watch sees the object made after the list', async () => !!watched.get('after', NS));
      assert.deepEqual([...added].sort(), [...Array.from({ length: 7 }, (_, i) => `listed-${i}`), 'after'].sort(), 'each object reported once');
    } finally {
      watched.stop();
    }
  });
});
