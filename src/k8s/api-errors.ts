// What a failed API call says: its HTTP status and message, from client-node's typed clients
// (ApiException: code, body as text) and from api-connection.ts (ApiError: code, parsed body)
// alike, read by shape so the agent never loads client-node's generated code.

/** The HTTP status of a failed API call, if it got that far. */
export function statusOf(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown })?.statusCode ?? (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A catch handler that lets one HTTP status pass (a 404 of a delete) and throws the rest. */
export function ignoreStatus(code: number) {
  return (err: unknown): undefined => {
    if (statusOf(err) === code) return undefined;
    throw err;
  };
}

/** A short text for logs: the API's own message when there is one. */
export function describeError(err: unknown): string {
  const code = statusOf(err);
  if (code !== undefined && err && typeof err === 'object' && 'body' in err) {
    const raw = (err as { body: unknown }).body;
    const body = typeof raw === 'string' ? safeJson(raw) : raw;
    const message = (body as { message?: string } | undefined)?.message;
    return `HTTP ${code}${message ? `: ${message}` : ''}`;
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
