// One place that turns a kubeconfig (or the in-cluster service account) into API clients.
import {
  ApiException,
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  KubernetesObjectApi,
  NetworkingV1Api,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { GROUP, VERSION } from './api-schemas.js';

export interface Kube {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  auth: AuthenticationV1Api;
  networking: NetworkingV1Api;
  discovery: DiscoveryV1Api;
  objects: KubernetesObjectApi;
}

/** In-cluster when no kubeconfig is given and the service account is mounted, else the default chain. */
export function connect(kubeconfig?: string): Kube {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    coordination: kc.makeApiClient(CoordinationV1Api),
    auth: kc.makeApiClient(AuthenticationV1Api),
    networking: kc.makeApiClient(NetworkingV1Api),
    discovery: kc.makeApiClient(DiscoveryV1Api),
    objects: KubernetesObjectApi.makeApiClient(kc),
  };
}

export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** The HTTP status of a failed API call, if it got that far. */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown; statusCode?: unknown })?.statusCode ?? (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A short text for logs: the API's own message when there is one. */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    const body = typeof err.body === 'string' ? safeJson(err.body) : err.body;
    const message = (body as { message?: string } | undefined)?.message;
    return `HTTP ${err.code}${message ? `: ${message}` : ''}`;
  }
  return (err as Error)?.message ?? String(err);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.slice(0, 200) };
  }
}

export const PLURALS = { policies: 'portsentrypolicies', blockedHosts: 'blockedhosts' } as const;

export const custom = (plural: string) => ({ group: GROUP, version: VERSION, plural });
export const customPath = (plural: string): string => `/apis/${GROUP}/${VERSION}/${plural}`;

/**
 * A plain JSON request with the kubeconfig's credentials. Used for server-side apply of
 * objects whose shape client-node's typed serializer would change (it drops fields it
 * renames, such as NetworkPolicy's `from`).
 */
export async function rawRequest(
  kube: Kube,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: unknown }> {
  const server = kube.kc.getCurrentCluster()?.server;
  if (!server) throw new Error('kubeconfig has no current cluster');
  const url = new URL(path, server);
  const options: RequestOptions = { method, headers: { 'content-type': contentType, accept: 'application/json' } };
  await kube.kc.applyToHTTPSOptions(options);
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON
        }
        const status = res.statusCode ?? 0;
        if (status >= 400) {
          const err = new Error(`HTTP ${status}: ${(parsed as { message?: string })?.message ?? text.slice(0, 200)}`) as Error & { code: number };
          err.code = status;
          reject(err);
        } else resolve({ status, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Where an object of one of the kinds we write lives in the API. */
const PLURAL_OF: Record<string, string> = {
  NetworkPolicy: 'networkpolicies',
  GlobalNetworkSet: 'globalnetworksets',
  GlobalNetworkPolicy: 'globalnetworkpolicies',
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
