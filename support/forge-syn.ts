// Run in a test namespace: one TCP SYN from a forged --source to --target:--port (IPv4 or
// IPv6; a multicast or link-local IPv6 target needs --interface). Test addresses only.
import { parseArgs } from 'node:util';
import { openSyn6Sender, openSynSender, synPacket, synPacket6 } from './raw-syn.js';
import { parseIp } from '../src/net/ip.js';

const { values } = parseArgs({ options: { source: { type: 'string' }, target: { type: 'string' }, port: { type: 'string', default: '1' }, interface: { type: 'string' } } });
const { source, target } = values;
const port = Number(values.port);
if (!source || !target || !parseIp(source) || parseIp(source)?.family !== parseIp(target)?.family || !(port >= 1 && port <= 65535))
  throw new Error('usage: forge-syn --source ADDR --target ADDR [--port N] [--interface IF]');
const v6 = parseIp(target)!.family === 6;
const sender = v6 ? openSyn6Sender() : openSynSender();
await sender.send(v6 ? synPacket6(source, target, port, 1) : synPacket(source, target, port, 1), values.interface ? `${target}%${values.interface}` : target);
sender.close();
process.stdout.write(`sent ${source} -> ${target}:${port}\n`);
