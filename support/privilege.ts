// Running a process with exactly the privileges a Kubernetes securityContext would give it:
// capsh drops every capability outside `capabilities` from the bounding set (so even uid 0
// keeps only those across exec, as in a container with `drop: [ALL]` and `add: [...]`),
// and switches to `uid`/`gid` when given. Tests read /proc/PID/status to prove it held.
import { readFile } from 'node:fs/promises';

/** Linux capability numbers (linux/capability.h), by the names Kubernetes uses. */
const CAPABILITIES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID',
  'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW',
  'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT',
  'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD',
  'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG',
  'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
] as const;

export interface Privileges {
  /** Capabilities kept, by Kubernetes name (NET_RAW); every other one is dropped. */
  capabilities: string[];
  uid?: number;
  gid?: number;
}

/** The capability mask of a set of names, as /proc/PID/status prints it (CapEff). */
export function capabilityMask(names: string[]): bigint {
  let mask = 0n;
  for (const name of names) {
    const bit = CAPABILITIES.indexOf(name.toUpperCase().replace(/^CAP_/, '') as (typeof CAPABILITIES)[number]);
    if (bit < 0) throw new Error(`unknown capability ${name}`);
    mask |= 1n << BigInt(bit);
  }
  return mask;
}

/** argv, run under capsh with only `p`'s capabilities and identity. */
export function withPrivileges(argv: string[], p: Privileges): string[] {
  const keep = capabilityMask(p.capabilities);
  const drop = CAPABILITIES.map((_, i) => i).filter((i) => (keep & (1n << BigInt(i))) === 0n);
  const [program, ...args] = argv;
  return [
    'capsh',
    `--drop=${drop.join(',')}`,
    ...(p.gid !== undefined ? [`--gid=${p.gid}`, `--groups=${p.gid}`] : []),
    ...(p.uid !== undefined ? [`--uid=${p.uid}`] : []),
    `--shell=${program!}`,
    '--',
    ...args,
  ];
}

export interface ProcessPrivileges {
  uid: number;
  effective: bigint;
  permitted: bigint;
  bounding: bigint;
}

export async function privilegesOf(pid: number): Promise<ProcessPrivileges> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): string => {
    const m = new RegExp(`^${name}:\\s+(.+)$`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name}`);
    return m[1]!;
  };
  return {
    uid: Number(field('Uid').split(/\s+/)[1]), // the effective uid
    effective: BigInt(`0x${field('CapEff')}`),
    permitted: BigInt(`0x${field('CapPrm')}`),
    bounding: BigInt(`0x${field('CapBnd')}`),
  };
}
