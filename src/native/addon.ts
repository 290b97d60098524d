// Where the native addons are loaded from: the release build, or the directory named by
// KUBE_PORTSENTRY_ADDON_DIR (the AddressSanitizer build the native tests run against).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RELEASE = fileURLToPath(new URL('../../../build/Release', import.meta.url));

export function loadAddon<T>(name: 'tripwire' | 'rawbatch' | 'netlink'): T {
  const dir = process.env.KUBE_PORTSENTRY_ADDON_DIR || RELEASE;
  return createRequire(import.meta.url)(join(dir, `${name}.node`)) as T;
}
