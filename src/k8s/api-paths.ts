// Where our custom resources live in the API.
import { GROUP, VERSION } from './api-schemas.js';

export const PLURALS = { policies: 'portsentrypolicies', blockedHosts: 'blockedhosts' } as const;

/** The group, version and plural of one of ours, as client-node's custom-object calls take them. */
export const custom = (plural: string) => ({ group: GROUP, version: VERSION, plural });
export const customPath = (plural: string): string => `/apis/${GROUP}/${VERSION}/${plural}`;
