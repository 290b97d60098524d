// A small schema language: one description of a structure gives both the runtime
// validator (with defaults and field-path errors) and, later, the CRD's OpenAPI schema,
// so the two cannot drift.

export type Check = (value: unknown) => string | null;

/** A CEL rule the API server enforces (x-kubernetes-validations): the CRD's twin of `check`. */
export interface CelRule {
  rule: string;
  message: string;
}

interface Common {
  description: string;
  /** Extra validation beyond the type, returning a message or null. */
  check?: Check;
  /** The same validation for the API server; a corpus test keeps the two in agreement. */
  cel?: readonly CelRule[];
}

export type Schema =
  | (Common & { type: 'string'; enum?: readonly string[]; default?: string; maxLength?: number; format?: 'date-time' })
  | (Common & { type: 'integer'; minimum?: number; maximum?: number; default?: number })
  | (Common & { type: 'boolean'; default?: boolean })
  | (Common & { type: 'int-or-string'; default?: number | string; maxLength?: number })
  | (Common & { type: 'array'; items: Schema; maxItems?: number; default?: unknown[]; mapKeys?: readonly string[] })
  | (Common & { type: 'object'; properties: Record<string, Schema>; required?: readonly string[] })
  | (Common & { type: 'map'; values: Schema });

export interface Problem {
  /** Field path in the document, e.g. "spec.tcp.ports[3]". */
  path: string;
  message: string;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (value === undefined) return 'nothing';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'function') return 'a function';
  // String() for the rest: JSON would print 1e400 (Infinity) as "null" and a symbol not at all.
  return typeof value === 'string' ? `string ${JSON.stringify(value)}` : `${typeof value} ${String(value)}`;
}

/** A key that could not be read back from a dotted path (empty, or with . [ ] " or spaces) is quoted: spec.nodeSelector.matchLabels["a.b/c"]. */
const join = (path: string, key: string): string =>
  /^[^.[\]"\s]+$/.test(key) ? (path ? `${path}.${key}` : key) : `${path}[${JSON.stringify(key)}]`;

/**
 * Validates `value` against `schema`, filling defaults for absent fields. Every problem
 * is collected (validation never stops at the first) and the defaulted value is returned.
 */
export function validate(schema: Schema, value: unknown, path: string, problems: Problem[]): unknown {
  const before = problems.length;
  let out: unknown = value;
  switch (schema.type) {
    case 'string':
      if (typeof value !== 'string') problems.push({ path, message: `must be a string, got ${describe(value)}` });
      else if (schema.enum && !schema.enum.includes(value))
        problems.push({ path, message: `must be one of ${schema.enum.join(', ')}, got ${JSON.stringify(value)}` });
      else if (schema.maxLength !== undefined && value.length > schema.maxLength)
        problems.push({ path, message: `must be at most ${schema.maxLength} characters` });
      else if (schema.format === 'date-time' && Number.isNaN(Date.parse(value)))
        problems.push({ path, message: `must be a date-time like 2026-11-21T00:00:00Z, got ${JSON.stringify(value)}` });
      break;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value))
        problems.push({ path, message: `must be an integer, got ${describe(value)}` });
      else if (schema.minimum !== undefined && value < schema.minimum)
        problems.push({ path, message: `must be at least ${schema.minimum}, got ${value}` });
      else if (schema.maximum !== undefined && value > schema.maximum)
        problems.push({ path, message: `must be at most ${schema.maximum}, got ${value}` });
      break;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push({ path, message: `must be true or false, got ${describe(value)}` });
      break;
    case 'int-or-string':
      if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value)))
        problems.push({ path, message: `must be an integer or a string, got ${describe(value)}` });
      else if (typeof value === 'string' && schema.maxLength !== undefined && value.length > schema.maxLength)
        problems.push({ path, message: `must be at most ${schema.maxLength} characters` });
      break;
    case 'array': {
      if (!Array.isArray(value)) {
        problems.push({ path, message: `must be a list, got ${describe(value)}` });
        break;
      }
      if (schema.maxItems !== undefined && value.length > schema.maxItems)
        problems.push({ path, message: `must have at most ${schema.maxItems} items, got ${value.length}` });
      out = value.map((item, i) => validate(schema.items, item, `${path}[${i}]`, problems));
      break;
    }
    case 'map': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        problems.push({ path, message: `must be a map, got ${describe(value)}` });
        break;
      }
      // fromEntries defines own properties: a "__proto__" key stays a key instead of
      // replacing the prototype (and vanishing from a label selector).
      out = Object.fromEntries(Object.entries(value).map(([key, item]) => [key, validate(schema.values, item, join(path, key), problems)]));
      break;
    }
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        problems.push({ path, message: `must be a map, got ${describe(value)}` });
        break;
      }
      const input = value as Record<string, unknown>;
      const result: Record<string, unknown> = {};
      for (const key of Object.keys(input)) {
        // Own properties only: "constructor" or "__proto__" is an unknown field, not Object's.
        if (!Object.hasOwn(schema.properties, key))
          problems.push({
            path: join(path, key),
            message: `unknown field (known: ${Object.keys(schema.properties).join(', ')})`,
          });
      }
      for (const [key, sub] of Object.entries(schema.properties)) {
        if (Object.hasOwn(input, key) && input[key] !== undefined) {
          result[key] = validate(sub, input[key], join(path, key), problems);
        } else if (schema.required?.includes(key)) {
          problems.push({ path: join(path, key), message: 'is required' });
        } else {
          const d = defaultOf(sub);
          if (d !== undefined) result[key] = d;
        }
      }
      out = result;
      break;
    }
  }
  if (problems.length === before && schema.check) {
    const message = schema.check(out);
    if (message) problems.push({ path, message });
  }
  return out;
}

/** The value a schema gives an absent field: its default, or an object of its defaults. */
export function defaultOf(schema: Schema): unknown {
  if (schema.type === 'object') {
    const result: Record<string, unknown> = {};
    for (const [key, sub] of Object.entries(schema.properties)) {
      const d = defaultOf(sub);
      if (d !== undefined) result[key] = d;
    }
    return result;
  }
  if (schema.type === 'map') return undefined;
  const d = schema.default;
  return Array.isArray(d) ? [...d] : d;
}
