// One place that turns a kubeconfig (or the in-cluster service account) into API clients.
import {
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  DiscoveryV1Api,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  NetworkingV1Api,
  Observable,
  PatchStrategy,
  ServerConfiguration,
  setHeaderOptions,
  type ConfigurationOptions,
  type HttpLibrary,
} from '@kubernetes/client-node';
import { openApiConnection, REQUEST_TIMEOUT_MS, type ApiConnection } from './api-connection.js';
import { requestLabels, type RequestObserver } from './request-labels.js';

export { describeError, ignoreStatus, statusOf } from './api-errors.js';
export { custom, customPath, PLURALS } from './api-paths.js';
export type { RequestObserver } from './request-labels.js';

export interface Kube {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  auth: AuthenticationV1Api;
  networking: NetworkingV1Api;
  discovery: DiscoveryV1Api;
  /** Lists, watches and raw requests (api-connection.ts), counted like the rest. */
  api: ApiConnection;
}

/**
 * In-cluster when no kubeconfig is given and the service account is mounted, else the default
 * chain. With `onRequest`, every request any client of this Kube makes is reported to it.
 */
export function connect(kubeconfig?: string, onRequest?: RequestObserver): Kube {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster) throw new Error(`${kubeconfig ?? 'the kubeconfig'} has no current cluster`);
  const server = cluster.server;
  // What kc.makeApiClient builds, with a deadline on every request, and the HTTP library
  // wrapped when requests are observed.
  const http = new IsomorphicFetchHttpLibrary();
  const config = createConfiguration({
    baseServer: new ServerConfiguration(server, {}),
    authMethods: { default: kc },
    httpApi: withDeadline(onRequest ? observedHttp(http, onRequest) : http, REQUEST_TIMEOUT_MS),
  });
  return {
    kc,
    core: new CoreV1Api(config),
    custom: new CustomObjectsApi(config),
    coordination: new CoordinationV1Api(config),
    auth: new AuthenticationV1Api(config),
    networking: new NetworkingV1Api(config),
    discovery: new DiscoveryV1Api(config),
    api: openApiConnection({ cluster, user: user ?? { name: 'user' } }, onRequest),
  };
}


function withDeadline(inner: HttpLibrary, timeoutMs: number): HttpLibrary {
  return {
    send(request) {
      if (!request.getSignal()) request.setSignal(AbortSignal.timeout(timeoutMs));
      return inner.send(request);
    },
  };
}

function observedHttp(inner: HttpLibrary, onRequest: RequestObserver): HttpLibrary {
  return {
    send(request) {
      const { verb, resource } = requestLabels(request.getHttpMethod(), request.getUrl());
      const sent = inner
        .send(request)
        .toPromise()
        .then(
          (response) => (onRequest(verb, resource, String(response.httpStatusCode)), response),
          (err: unknown) => {
            onRequest(verb, resource, 'error');
            throw err;
          },
        );
      return new Observable(sent);
    },
  };
}

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Per-call options that abort the request when `signal` fires (a deadline). */
export function withSignal(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (context) => (context.setSignal(signal), new Observable(Promise.resolve(context))),
        post: (context) => new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/**
 * A plain JSON request with the kubeconfig's credentials. Used for server-side apply of
 * objects whose shape client-node's typed serializer would change (it drops fields it
 * renames, such as NetworkPolicy's `from`).
 */
export async function rawRequest(kube: Kube, method: string, path: string, body?: unknown, contentType = 'application/json', accept = 'application/json'): Promise<{ body: unknown }> {
  return { body: await kube.api.request(method, path, body, { contentType, accept }) };
}

/** Where an object of one of the kinds we write lives in the API. */
const PLURAL_OF: Record<string, string> = {
  NetworkPolicy: 'networkpolicies',
  GlobalNetworkSet: 'globalnetworksets',
  GlobalNetworkPolicy: 'globalnetworkpolicies',
  Tier: 'tiers',
  CiliumClusterwideNetworkPolicy: 'ciliumclusterwidenetworkpolicies',
};

export function objectPath(obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }): string {
  const plural = PLURAL_OF[obj.kind];
  if (!plural) throw new Error(`no API path known for kind ${obj.kind}`);
  const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
  const ns = obj.metadata.namespace ? `/namespaces/${encodeURIComponent(obj.metadata.namespace)}` : '';
  return `${base}${ns}/${plural}/${encodeURIComponent(obj.metadata.name)}`;
}

/** Server-side apply (creates or updates), as field manager kube-portsentry. */
export function applyObject(kube: Kube, obj: { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } }) {
  return rawRequest(kube, 'PATCH', `${objectPath(obj)}?fieldManager=kube-portsentry&force=true`, obj, 'application/apply-patch+yaml');
}
