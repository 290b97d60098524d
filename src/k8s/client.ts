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
