// The operator's address, for an agent whose pod has the node's own resolvers (dnsPolicy
// Default, so that its resolv.conf names the node's upstream servers) and so cannot resolve
// cluster Service names: a name <service>.<namespace>.svc[.<domain>] is looked up as that
// Service's cluster IP in the API, never asked of the node's resolvers (which cannot know
// it, and may be slow or unreachable: the real cluster showed every report timing out
// behind such a lookup). Other names resolve as usual. TLS still checks the name the URL gives.
import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import type { V1Service } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import type { ApiConnection } from '../k8s/api-connection.js';
import { describeError } from '../k8s/api-errors.js';

const SERVICE_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.[a-z0-9.-]+)?\.?$/;
const CACHE_MS = 60_000;

export function serviceAwareLookup(api: ApiConnection, logger: Logger): LookupFunction {
  const cache = new Map<string, { address: string; until: number }>();
  const clusterIp = async (name: string, namespace: string): Promise<string | null> => {
    const key = `${namespace}/${name}`;
    const hit = cache.get(key);
    if (hit && hit.until > Date.now()) return hit.address;
    const service = (await api.request('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}`)) as V1Service;
    const address = service.spec?.clusterIP;
    if (!address || address === 'None') return null;
    cache.set(key, { address, until: Date.now() + CACHE_MS });
    return address;
  };
  return (hostname, options, callback) => {
    const m = SERVICE_NAME.exec(hostname);
    if (!m) return dnsLookup(hostname, options, callback as (err: NodeJS.ErrnoException | null, address: string | { address: string; family: number }[], family?: number) => void);
    clusterIp(m[1]!, m[3]!).then(
      (ip) => {
        if (!ip) return callback(Object.assign(new Error(`${hostname}: the Service has no cluster IP`), { code: 'ENOTFOUND' }), '', 0);
        const fam = ip.includes(':') ? 6 : 4;
        if (options.all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: ip, family: fam }]);
        else callback(null, ip, fam);
      },
      (apiErr: unknown) => {
        logger.warn({ host: hostname, err: describeError(apiErr) }, 'cannot look the operator Service up in the API');
        callback(Object.assign(new Error(`${hostname}: ${describeError(apiErr)}`), { code: 'EAI_AGAIN' }), '', 0);
      },
    );
  };
}
