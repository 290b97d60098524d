// How the API server's audit log names a request, for counting requests by kind.

/** Told of every API request once its status is known: verb, resource, HTTP code or "error". */
export type RequestObserver = (verb: string, resource: string, code: string) => void;

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
