// Starts a long-lived process of the cluster: detached from the caller (so `up` can exit
// and leave the cluster running), in one of the cluster's cgroups and in a network
// namespace, with its output in a log file.
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { joinCgroupScript } from './cgroups.js';

export async function launch(cgroup: string, netns: string, log: string, argv: string[]): Promise<number> {
  const out = await open(log, 'a');
  try {
    const child = spawn(
      'sh',
      ['-c', `${joinCgroupScript(cgroup)}; exec nsenter --net=/run/netns/${netns} "$@"`, 'launch', ...argv],
      { detached: true, stdio: ['ignore', out.fd, out.fd] },
    );
    child.unref();
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    return pid;
  } finally {
    await out.close();
  }
}
