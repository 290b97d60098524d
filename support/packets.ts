// Hand-made IPv4 packets and transport headers for the parser tests (198.18.0.1 to 198.18.0.2).

/** An IPv4 header (options when ihl > 5, fragment offset) before `transport`. */
export function ipv4(proto: number, transport: number[], options: { ihl?: number; frag?: number; dst?: number[] } = {}): Uint8Array {
  const ihl = options.ihl ?? 5;
  const header = new Array<number>(Math.max(ihl, 5) * 4).fill(0);
  header[0] = 0x40 | ihl;
  header[6] = (options.frag ?? 0) >> 8;
  header[7] = (options.frag ?? 0) & 0xff;
  header[9] = proto;
  header.splice(12, 4, 198, 18, 0, 1);
  header.splice(16, 4, ...(options.dst ?? [198, 18, 0, 2]));
  return Uint8Array.from([...header, ...transport]);
}

export const tcp = (dport: number, flags: number, offset = 5) => [0x9c, 0x40, dport >> 8, dport & 0xff, 0, 0, 0, 1, 0, 0, 0, 0, offset << 4, flags, 0xff, 0xff, 0, 0, 0, 0];
export const udp = (dport: number) => [0x9c, 0x40, dport >> 8, dport & 0xff, 0, 8, 0, 0];
