// The bundled default policy: every field at its schema default.
import { defaultOf } from './schema.js';
import { API_VERSION, KIND, specSchema } from './spec-schema.js';
import type { PolicyDocument, PolicySpec } from './types.js';

/** The bundled default policy: the classic PortSentry defaults with Debian's port lists. */
export function defaultPolicy(): PolicyDocument {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: 'default' },
    spec: defaultOf(specSchema) as PolicySpec,
  };
}
