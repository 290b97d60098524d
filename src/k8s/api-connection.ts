// The API server, reached with node's https and the kubeconfig parsed by client-node's
// config_types (its clusters, users and contexts). The agent talks to the API only through
// this: client-node's index, KubeConfig and typed clients load all of its generated models
// and APIs (about 65 MB of RSS, docs/architecture.md), of which the agent needs none. The
// operator keeps the full client (client.ts) and uses this for lists, watches and raw
// requests too, so both count and shape them one way.
import { readFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, STATUS_CODES, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { newClusters, newContexts, newUsers, type Cluster, type User } from '@kubernetes/client-node/dist/config_types.js';
import { ExecAuth } from '@kubernetes/client-node/dist/exec_auth.js';
import { requestLabels, type RequestObserver } from './request-labels.js';

/** One event of a watch: its type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) and object. */
export type WatchCallback = (type: string, object: unknown) => void;

export interface ApiConnection {
  /** The API server's URL, as the kubeconfig names it. */
  readonly server: string;
  /** One request; the parsed JSON answer, or an ApiError for a status of 400 and above. */
  request(method: string, path: string, body?: unknown, options?: RequestExtras): Promise<unknown>;
  /**
   * Starts a watch of `path` (?watch=true and `query` added); `done` is called once, with
   * null when the server ended it and with the error otherwise. Abort the controller to end it.
   */
  watch(path: string, query: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: (err: unknown) => void): Promise<AbortController>;
}

export interface RequestExtras {
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
}

/** An answer of 400 or above: its status and the API's Status body (or the text). */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly body: unknown,
  ) {
    const message = (body as { message?: unknown } | undefined)?.message;
    super(`HTTP ${code}: ${typeof message === 'string' ? message : typeof body === 'string' ? body.slice(0, 200) : STATUS_CODES[code] ?? ''}`);
  }
}

/** The cluster and user of the current context (in-cluster: the pod's service account). */
export interface ApiConfig {
  cluster: Cluster;
  user: User;
}

/** No request waits longer than this unless its caller set a deadline of its own. */
export const REQUEST_TIMEOUT_MS = 60_000;

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * `kubeconfig`, else the first file of $KUBECONFIG, else ~/.kube/config, else the pod's
 * service account: client-node's default order (a missing one is an error, not localhost).
 */
export async function loadApiConfig(kubeconfig?: string): Promise<ApiConfig> {
  const fromEnv = process.env.KUBECONFIG?.split(':').find(Boolean);
  const home = join(homedir(), '.kube', 'config');
  const file = kubeconfig ?? fromEnv ?? (existsSync(home) ? home : undefined);
  return file ? fromFile(file) : inClusterConfig();
}

/**
 * The pod's service account: the API server from KUBERNETES_SERVICE_HOST/PORT, its CA, and
 * the token file, which the kubelet rotates (read for every request).
 */
export function inClusterConfig(serviceAccountDir = SERVICE_ACCOUNT, env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new Error('no kubeconfig given or found, and not in a cluster (KUBERNETES_SERVICE_HOST is unset)');
  return {
    cluster: { name: 'inCluster', server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile: join(serviceAccountDir, 'ca.crt'), skipTLSVerify: false },
    user: { name: 'inClusterUser', authProvider: { name: 'tokenFile', config: { tokenFile: join(serviceAccountDir, 'token') } } },
  };
}

async function fromFile(file: string): Promise<ApiConfig> {
  // Loaded only here: an agent in its pod reads no kubeconfig.
  const { parse } = await import('yaml');
  const doc = (parse(await readFile(file, 'utf8')) ?? {}) as Record<string, unknown>;
  const where = (what: string) => `${file}: ${what}`;
  const clusters = newClusters(doc.clusters);
  const users = newUsers(doc.users);
  const contexts = newContexts(doc.contexts);
  const current = doc['current-context'];
  const context = contexts.find((c) => c.name === current) ?? (current === undefined && contexts.length === 1 ? contexts[0] : undefined);
  if (!context) throw new Error(where(`current-context ${JSON.stringify(current)} is not among its contexts`));
  const cluster = clusters.find((c) => c.name === context.cluster);
  const user = users.find((u) => u.name === context.user) ?? { name: context.user };
  if (!cluster) throw new Error(where(`context ${context.name}: cluster ${JSON.stringify(context.cluster)} is not among its clusters`));
  const root = dirname(file);
  const absolute = (p: string | undefined) => (p && !isAbsolute(p) ? join(root, p) : p);
  if (cluster.caFile) cluster.caFile = absolute(cluster.caFile);
  if (user.certFile) user.certFile = absolute(user.certFile);
  if (user.keyFile) user.keyFile = absolute(user.keyFile);
  const tokenFile = (user.authProvider as { config?: { tokenFile?: string } } | null | undefined)?.config?.tokenFile;
  if (tokenFile) (user.authProvider as { config: { tokenFile: string } }).config.tokenFile = absolute(tokenFile)!;
  return { cluster, user };
}

/** The agent's way in: loadApiConfig, then openApiConnection. */
export async function connectApi(kubeconfig?: string, onRequest?: RequestObserver): Promise<ApiConnection> {
  return openApiConnection(await loadApiConfig(kubeconfig), onRequest);
}

/** A connection to the cluster of `config`; `onRequest` is told of every request and watch. */
export function openApiConnection(config: ApiConfig, onRequest?: RequestObserver): ApiConnection {
  const { cluster, user } = config;
  if (cluster.proxyUrl) throw new Error(`cluster ${cluster.name}: proxy-url is not supported`);
  const provider = (user.authProvider as { name?: string; config?: { tokenFile?: string } } | null | undefined) ?? undefined;
  const tokenFile = provider?.config?.tokenFile;
  if (provider && !tokenFile) throw new Error(`user ${user.name}: auth-provider ${provider.name ?? '?'} is not supported; use a token, a token file, a client certificate or exec`);
  const read = (file: string | null | undefined, data: string | null | undefined) => (file ? readFileSync(file) : data ? Buffer.from(data, 'base64') : undefined);
  const [ca, cert, key] = [read(cluster.caFile, cluster.caData), read(user.certFile, user.certData), read(user.keyFile, user.keyData)];
  const secure = cluster.server.startsWith('https:');
  const tls = {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
    ...(cluster.skipTLSVerify ? { rejectUnauthorized: false } : {}),
  };
  const agent = secure ? new HttpsAgent({ keepAlive: true, ...tls }) : new HttpAgent({ keepAlive: true });
  const exec = user.exec ? new ExecAuth() : undefined;
  const basic = user.username ? `${user.username}:${user.password ?? ''}` : undefined;

  /** Headers with the credentials as they are now: a token file is read for every request. */
  const headers = async (extra: Record<string, string>): Promise<Record<string, string>> => {
    const h: Record<string, string> = { accept: 'application/json', ...extra };
    if (user.impersonateUser) h['impersonate-user'] = user.impersonateUser;
    if (tokenFile) h.authorization = `Bearer ${(await readFile(tokenFile, 'utf8')).trim()}`;
    else if (user.token) h.authorization = `Bearer ${user.token}`;
    else if (exec) {
      const opts: RequestOptions & { headers: Record<string, string> } = { headers: {} };
      await exec.applyAuthentication(user, opts);
      Object.assign(h, opts.headers);
    }
    return h;
  };

  const send = async (method: string, url: URL, body: string | undefined, extra: Record<string, string>, signal: AbortSignal): Promise<IncomingMessage> => {
    const options: RequestOptions = { method, agent, headers: await headers(extra), signal, ...(basic ? { auth: basic } : {}) };
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = (secure ? httpsRequest : httpRequest)(url, options, resolve);
      req.on('error', reject);
      req.end(body);
    });
  };

  const observe = (method: string, url: URL) => {
    const { verb, resource } = requestLabels(method, url.href);
    return (code: string) => onRequest?.(verb, resource, code);
  };

  return {
    server: cluster.server,
    async request(method, path, body, extras = {}) {
      const url = new URL(path, cluster.server);
      const seen = observe(method, url);
      const signal = extras.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS);
      const extra: Record<string, string> = {
        ...(body === undefined ? {} : { 'content-type': extras.contentType ?? 'application/json' }),
        ...(extras.accept ? { accept: extras.accept } : {}),
      };
      try {
        const res = await send(method, url, body === undefined ? undefined : JSON.stringify(body), extra, signal);
        const text = await readAll(res);
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // plain text (an error page)
        }
        const status = res.statusCode ?? 0;
        seen(String(status));
        if (status >= 400) throw new ApiError(status, parsed);
        return parsed;
      } catch (err) {
        if (!(err instanceof ApiError)) seen('error');
        throw err;
      }
    },
    async watch(path, query, callback, done) {
      const url = new URL(path, cluster.server);
      url.searchParams.set('watch', 'true');
      for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
      const seen = observe('GET', url);
      const controller = new AbortController();
      let ended = false;
      const end = (err: unknown) => {
        if (ended) return;
        ended = true;
        controller.abort();
        done(err);
      };
      try {
        const res = await send('GET', url, undefined, {}, controller.signal);
        seen(String(res.statusCode));
        if (res.statusCode !== 200) {
          const text = await readAll(res).catch(() => '');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // plain text
          }
          end(new ApiError(res.statusCode ?? 0, parsed));
          return controller;
        }
        res.socket.setKeepAlive(true, 30_000);
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            if (!line.trim()) continue;
            let event: { type?: string; object?: unknown };
            try {
              event = JSON.parse(line) as typeof event;
            } catch {
              continue; // a line cut by an abort
            }
            if (event.type) callback(event.type, event.object);
          }
        });
        res.on('end', () => end(null));
        res.on('error', (err) => end(controller.signal.aborted ? null : err));
        res.on('close', () => end(null));
      } catch (err) {
        seen('error');
        end(err);
      }
      return controller;
    },
  };
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    res.on('end', () => resolve(text));
    res.on('error', reject);
  });
}
