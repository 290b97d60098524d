// The part of raw-socket (a CommonJS native addon without typings) that the detectors use.
declare module 'raw-socket' {
  import { EventEmitter } from 'node:events';

  export interface SocketOptions {
    addressFamily?: number;
    protocol?: number;
    bufferSize?: number;
  }

  export class Socket extends EventEmitter {
    close(): this;
    pauseRecv(): this;
    resumeRecv(): this;
    on(event: 'message', listener: (buffer: Buffer, source: string) => void): this;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'close', listener: () => void): this;
  }

  const raw: {
    createSocket(options: SocketOptions): Socket;
    AddressFamily: { IPv4: number; IPv6: number };
    Protocol: { None: number; ICMP: number; TCP: number; UDP: number; ICMPv6: number };
  };
  export default raw;
}
