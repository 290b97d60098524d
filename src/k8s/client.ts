// One place that turns a kubeconfig (or the in-cluster service account) into API clients.
import {
  ApiException,
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
  Watch,
  type ConfigurationOptions,
  type HttpLibrary,
} from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';
import { jsonRequest, type JsonAnswer } from '../net/json-request.js';
import { GROUP, VERSION } from './api-schemas.js';

export interface Kube {
  kc: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  auth: AuthenticationV1Api;
  networking: NetworkingV1Api;
  discovery: DiscoveryV1Api;
  /** Starts watches (the informers' ListWatch); counts them when requests are observed. */
  watch: Watch;
  onRequest?: RequestObserver;
}

/** Told of every API request once its status is known: verb, resource, HTTP code or "error". */
export type RequestObserver = (verb: string, resource: string, code: string) => void;

/**
 * In-cluster when no kubeconfig is given and the service account is mounted, else the default
 * chain. With `onRequest`, every request any client of this Kube makes is reported to it.
 */
export function connect(kubeconfig?: string, onRequest?: RequestObserver): Kube {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error(`${kubeconfig ?? 'the kubeconfig'} has no current cluster`);
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
    watch: onRequest ? new ObservedWatch(kc, onRequest) : new Watch(kc),
    ...(onRequest ? { onRequest } : {}),
  };
}

/** No API request waits longer than this unless its caller set a deadline of its own. */
const REQUEST_TIMEOUT_MS = 60_000;

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

class ObservedWatch extends Watch {
  constructor(
    kc: KubeConfig,
    private readonly onRequest: RequestObserver,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    // Watch reports a failed request through `done` before it returns, a started one never.
    let failure: unknown;
    let failed = false;
    const controller = await super.watch(path, queryParams, callback, (err) => {
      if (!failed && err) [failed, failure] = [true, err];
      done(err);
    });
    this.onRequest('watch', requestLabels('GET', path).resource, failed ? codeOf(failure) : '200');
    return controller;
  }
}

function codeOf(err: unknown): string {
  const code = statusOf(err);
  return code === undefined ? 'error' : String(code);
}

/**
 * The verb and resource of a request, as the API server's audit log names them: "list"
 * and "get" for reads of a collection and of one object, "watch" with ?watch, and the
 * resource's plural with its subresource ("blockedhosts/status"). Names and namespaces are
 * left out, so the labels stay a small set. Paths outside /api and /apis give "nonresource".
 */
export function requestLabels(method: string, url: string): { verb: string; resource: string } {
  const { pathname, searchParams } = new URL(url, 'http://x');
  const parts = pathname.split('/').filter(Boolean);
  const start = parts[0] === 'api' ? 2 : parts[0] === 'apis' ? 3 : -1;
  let rest = start < 0 ? [] : parts.slice(start);
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const [resource, name, sub] = rest;
  const m = method.toUpperCase();
  const verb =
    m === 'GET'
      ? searchParams.get('watch') === 'true' || searchParams.get('watch') === '1'
        ? 'watch'
        : name || !resource
          ? 'get'
          : 'list'
      : m === 'POST'
        ? 'create'
        : m === 'PUT'
          ? 'update'
          : m === 'PATCH'
            ? 'patch'
            : m === 'DELETE'
              ? name
                ? 'delete'
                : 'deletecollection'
              : m.toLowerCase();
  return { verb, resource: resource ? (sub ? `${resource}/${sub}` : resource) : 'nonresource' };
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

/** The HTTP status of a failed API call, if it got that far. */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown; statusCode?: unknown })?.statusCode ?? (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A short text for logs: the API's own message when there is one. */
/** A catch handler that lets one HTTP status pass (a 404 of a delete) and throws the rest. */
export function ignoreStatus(code: number) {
  return (err: unknown): undefined => {
    if (statusOf(err) === code) return undefined;
    throw err;
  };
}

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
  accept = 'application/json',
): Promise<{ status: number; body: unknown }> {
  const server = kube.kc.getCurrentCluster()?.server;
  if (!server) throw new Error('kubeconfig has no current cluster');
  const url = new URL(path, server);
  const onRequest = kube.onRequest;
  const labels = requestLabels(method, url.href);
  const options: RequestOptions = { method, headers: { 'content-type': contentType, accept } };
  await kube.kc.applyToHTTPSOptions(options);
  const failed = (r: JsonAnswer): Error => {
    const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    return Object.assign(new Error(`HTTP ${r.status}: ${(r.body as { message?: string })?.message ?? text.slice(0, 200)}`), { code: r.status });
  };
  return jsonRequest(url, options, body, REQUEST_TIMEOUT_MS).then((r) => {
    if (r.status >= 400) throw failed(r);
    return r;
  }).then(
    (r) => (onRequest?.(labels.verb, labels.resource, String(r.status)), r),
    (err: unknown) => {
      onRequest?.(labels.verb, labels.resource, codeOf(err));
      throw err;
    },
  );
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
