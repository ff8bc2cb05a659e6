/**
 * A faster path for jaeger-client's UDP reporting, same wire format.
 *
 * jaeger-client's `RemoteReporter.report()` runs inside `span.finish()`, in
 * the application's call: it converts the span to thriftrw objects, measures
 * their encoded size with thriftrw (dist/src/reporters/udp_sender.js
 * `append`) and, when a packet is full, encodes the whole batch with
 * thriftrw again and sends it. That generic machinery is most of what a
 * traced call costs.
 *
 * `queueReports(reporter)` changes a jaeger `RemoteReporter` with a
 * `UDPSender` so that `report()` only queues the finished span. The queue is
 * encoded and sent in the reporter's flush (its interval timer, an explicit
 * flush, or a `setImmediate` once FLUSH_AT spans are waiting), by a direct
 * Thrift binary-protocol writer that produces the very bytes thriftrw
 * produces for jaeger's `Agent.emitBatch` (jaeger-idl/thrift/jaeger.thrift,
 * thriftrw-idl/agent.thrift), through the sender's own socket, host and port,
 * in packets no larger than the sender's `maxPacketSize`.
 *
 * `withQueuedUdpSender(build)` runs jaeger's own tracer construction with
 * `QueuedUdpSender` standing in for its `UDPSender`: same options (host,
 * port, socket type, packet size, from the config and the `JAEGER_*`
 * environment as jaeger resolves them), without the thriftrw IDL parsing
 * that jaeger's sender does in its constructor (tens of milliseconds at startup).
 */
import * as dgram from 'dgram';
import { REFERENCE_CHILD_OF, REFERENCE_FOLLOWS_FROM } from 'opentracing';
import { suppressInstrumentation } from './context';
import { GrowableBuffer } from './growable-buffer';
import { logOnce } from './logger';
import type { JaegerProcess, JaegerReporterInternals, JaegerSpanInternals, JaegerUdpSender, RawTag } from './internal-types';

/** Spans waiting before a flush is scheduled for the next turn of the event loop. */
export const FLUSH_AT = 100;
/** Spans waiting beyond which `report()` flushes at once (a synchronous burst must not grow the queue unbounded). */
export const FLUSH_NOW_AT = 5000;

// Thrift binary protocol type ids.
const T_STOP = 0;
const T_BOOL = 2;
const T_DOUBLE = 4;
const T_I32 = 8;
const T_I64 = 10;
const T_STRING = 11;
const T_STRUCT = 12;
const T_LIST = 15;

// jaeger.thrift enums.
const TAG_TYPE: Record<string, number> = { STRING: 0, DOUBLE: 1, BOOL: 2, LONG: 3, BINARY: 4 };
const REF_CHILD_OF = 0;
const REF_FOLLOWS_FROM = 1;

const TWO_32 = 2 ** 32;
const EMPTY = Buffer.alloc(0);
/** jaeger's `ThriftUtils.emptyBuffer`: the default of a tag's `vLong` and `vBinary`. */
const ZERO8 = Buffer.alloc(8);

/** A growable buffer with Thrift binary-protocol writers. */
export class ThriftWriter extends GrowableBuffer {
  constructor(size = 64 * 1024) {
    super(size);
  }

  byte(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  field(type: number, id: number): void {
    this.ensure(3);
    const b = this.buf;
    const p = this.pos;
    b[p] = type;
    b[p + 1] = (id >>> 8) & 0xff;
    b[p + 2] = id & 0xff;
    this.pos = p + 3;
  }

  i32(v: number): void {
    this.ensure(4);
    const b = this.buf;
    const p = this.pos;
    b[p] = (v >>> 24) & 0xff;
    b[p + 1] = (v >>> 16) & 0xff;
    b[p + 2] = (v >>> 8) & 0xff;
    b[p + 3] = v & 0xff;
    this.pos = p + 4;
  }

  /** An i64 given as a Buffer, as thriftrw writes it: its first 8 bytes, zeros for missing ones. */
  i64Bytes(b: Buffer): void {
    this.ensure(8);
    const d = this.buf;
    const p = this.pos;
    const n = b.length < 8 ? b.length : 8;
    let i = 0;
    for (; i < n; i++) d[p + i] = b[i];
    for (; i < 8; i++) d[p + i] = 0;
    this.pos = p + 8;
  }

  /** An i64 from a number, truncated toward zero, as jaeger's `Utils.encodeInt64` (node-int64) does. */
  i64Number(v: number): void {
    this.ensure(8);
    const t = Math.trunc(v);
    if (t >= 0 && t < Number.MAX_SAFE_INTEGER) {
      const hi = Math.floor(t / TWO_32);
      const lo = t - hi * TWO_32;
      const b = this.buf;
      const p = this.pos;
      b[p] = (hi >>> 24) & 0xff;
      b[p + 1] = (hi >>> 16) & 0xff;
      b[p + 2] = (hi >>> 8) & 0xff;
      b[p + 3] = hi & 0xff;
      b[p + 4] = (lo >>> 24) & 0xff;
      b[p + 5] = (lo >>> 16) & 0xff;
      b[p + 6] = (lo >>> 8) & 0xff;
      b[p + 7] = lo & 0xff;
    } else {
      this.buf.writeBigUInt64BE(BigInt.asUintN(64, BigInt(Number.isFinite(t) ? t : 0)), this.pos);
    }
    this.pos += 8;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }

  string(s: string): void {
    // Short ASCII strings (tag keys, most values) byte by byte: a native
    // Buffer#write per string costs more than the copy itself.
    const len = s.length;
    if (len <= 128) {
      this.ensure(4 + len);
      const b = this.buf;
      let p = this.pos + 4;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[p++] = c;
      }
      if (i === len) {
        this.i32(len);
        this.pos = p;
        return;
      }
    }
    const n = Buffer.byteLength(s);
    this.ensure(4 + n);
    this.buf.writeInt32BE(n, this.pos);
    this.buf.write(s, this.pos + 4, n, 'utf8');
    this.pos += 4 + n;
  }

  binary(b: Buffer): void {
    const n = b.length;
    this.ensure(4 + n);
    this.i32(n);
    if (n <= 16) {
      const d = this.buf;
      const p = this.pos;
      for (let i = 0; i < n; i++) d[p + i] = b[i];
    } else {
      b.copy(this.buf, this.pos);
    }
    this.pos += n;
  }

  listHeader(elemType: number, size: number): void {
    this.ensure(5);
    this.buf[this.pos] = elemType;
    this.buf.writeInt32BE(size, this.pos + 1);
    this.pos += 5;
  }
}

/**
 * One `Tag` struct. The value is typed as jaeger's `ThriftUtils.getThriftTags`
 * types it (dist/src/thrift.js), and, as there, every optional field is
 * written with its default.
 */
function writeTag(w: ThriftWriter, key: string, value: unknown): void {
  let vType = 0;
  let vStr = '';
  let vDouble = 0;
  let vBool = false;
  let vBinary = ZERO8;
  const type = typeof value;
  if (type === 'number') {
    vType = 1;
    vDouble = value as number;
  } else if (type === 'boolean') {
    vType = 2;
    vBool = value as boolean;
  } else if (value instanceof Buffer) {
    vType = 4;
    vBinary = value;
  } else if (type === 'object') {
    vStr = JSON.stringify(value);
  } else {
    vStr = type === 'string' ? (value as string) : String(value);
  }
  w.field(T_STRING, 1);
  w.string(key);
  w.field(T_I32, 2);
  w.i32(vType);
  w.field(T_STRING, 3);
  w.string(vStr);
  w.field(T_DOUBLE, 4);
  w.double(vDouble);
  w.field(T_BOOL, 5);
  w.byte(vBool ? 1 : 0);
  w.field(T_I64, 6);
  w.i64Bytes(EMPTY);
  w.field(T_STRING, 7);
  w.binary(vBinary);
  w.byte(T_STOP);
}

function writeTags(w: ThriftWriter, tags: readonly RawTag[]): void {
  w.listHeader(T_STRUCT, tags.length);
  for (const t of tags) writeTag(w, t.key, t.value);
}

/** A `Tag` already in jaeger's thrift form (the process tags): written field by field as given. */
function writeThriftTag(w: ThriftWriter, t: JaegerProcess['tags'][number]): void {
  w.field(T_STRING, 1);
  w.string(t.key);
  w.field(T_I32, 2);
  w.i32(typeof t.vType === 'number' ? t.vType : (TAG_TYPE[t.vType] ?? 0));
  if (t.vStr !== undefined && t.vStr !== null) {
    w.field(T_STRING, 3);
    w.string(t.vStr);
  }
  if (t.vDouble !== undefined && t.vDouble !== null) {
    w.field(T_DOUBLE, 4);
    w.double(t.vDouble);
  }
  if (t.vBool !== undefined && t.vBool !== null) {
    w.field(T_BOOL, 5);
    w.byte(t.vBool ? 1 : 0);
  }
  if (t.vLong !== undefined && t.vLong !== null) {
    w.field(T_I64, 6);
    w.i64Bytes(t.vLong);
  }
  if (t.vBinary !== undefined && t.vBinary !== null) {
    w.field(T_STRING, 7);
    w.binary(t.vBinary);
  }
  w.byte(T_STOP);
}

/** The `Process` struct's fields and stop. */
export function encodeProcess(process: JaegerProcess): Buffer {
  const w = new ThriftWriter(1024);
  w.field(T_STRING, 1);
  w.string(process.serviceName);
  w.field(T_LIST, 2);
  w.listHeader(T_STRUCT, process.tags.length);
  for (const t of process.tags) writeThriftTag(w, t);
  w.byte(T_STOP);
  return Buffer.from(w.buf.subarray(0, w.pos));
}

function low64(traceId: Buffer | null | undefined): Buffer {
  return traceId ? traceId.subarray(-8) : EMPTY;
}

function high64(traceId: Buffer | null | undefined): Buffer {
  return traceId && traceId.length > 8 ? traceId.subarray(-16, -8) : EMPTY;
}

/** One `Span` struct, as jaeger's `ThriftUtils.spanToThrift` + thriftrw would write it. */
export function writeSpan(w: ThriftWriter, span: JaegerSpanInternals): void {
  const ctx = span._spanContext;
  w.field(T_I64, 1);
  w.i64Bytes(low64(ctx.traceId));
  w.field(T_I64, 2);
  w.i64Bytes(high64(ctx.traceId));
  w.field(T_I64, 3);
  w.i64Bytes(ctx.spanId ?? EMPTY);
  w.field(T_I64, 4);
  w.i64Bytes(ctx.parentId ?? EMPTY);
  w.field(T_STRING, 5);
  w.string(span._operationName);
  const refs = span._references ?? [];
  let nRefs = 0;
  for (const r of refs) {
    const type = r.type();
    if (type === REFERENCE_CHILD_OF || type === REFERENCE_FOLLOWS_FROM) nRefs++;
  }
  w.field(T_LIST, 6);
  w.listHeader(T_STRUCT, nRefs);
  for (const r of refs) {
    const type = r.type();
    if (type !== REFERENCE_CHILD_OF && type !== REFERENCE_FOLLOWS_FROM) continue;
    const rc = r.referencedContext();
    w.field(T_I32, 1);
    w.i32(type === REFERENCE_CHILD_OF ? REF_CHILD_OF : REF_FOLLOWS_FROM);
    w.field(T_I64, 2);
    w.i64Bytes(low64(rc.traceId));
    w.field(T_I64, 3);
    w.i64Bytes(high64(rc.traceId));
    w.field(T_I64, 4);
    w.i64Bytes(rc.spanId ?? EMPTY);
    w.byte(T_STOP);
  }
  w.field(T_I32, 7);
  w.i32(ctx.flags);
  w.field(T_I64, 8);
  w.i64Number(span._startTime * 1000);
  w.field(T_I64, 9);
  w.i64Number(span._duration * 1000);
  w.field(T_LIST, 10);
  writeTags(w, span._tags);
  w.field(T_LIST, 11);
  w.listHeader(T_STRUCT, span._logs.length);
  for (const log of span._logs) {
    w.field(T_I64, 1);
    w.i64Number(log.timestamp * 1000);
    w.field(T_LIST, 2);
    writeTags(w, log.fields);
    w.byte(T_STOP);
  }
  w.byte(T_STOP);
}

/** `Agent.emitBatch` message header (strict binary, version 1, ONEWAY, seqid 0), up to the batch's process field. */
function messagePrefix(): Buffer {
  const w = new ThriftWriter(64);
  w.i32(0x80010004 | 0);
  w.string('emitBatch');
  w.i32(0);
  w.field(T_STRUCT, 1); // emitBatch_args.batch
  w.field(T_STRUCT, 1); // Batch.process
  return Buffer.from(w.buf.subarray(0, w.pos));
}

const PREFIX = messagePrefix();
// Batch.spans field header and list header, then after the spans: Batch stop, args stop.
const SPANS_HEADER = 3 + 5;
const SUFFIX = 2;

/**
 * Encodes `spans` into `emitBatch` packets of at most `maxPacketSize` bytes.
 * A span that cannot be encoded, or that alone exceeds a packet, is dropped
 * and counted in `dropped`.
 */
export function encodeBatches(
  processBytes: Buffer,
  spans: readonly JaegerSpanInternals[],
  maxPacketSize: number,
  scratch: ThriftWriter = new ThriftWriter(),
): { packets: Array<{ buffer: Buffer; spans: number }>; dropped: number } {
  const overhead = PREFIX.length + processBytes.length + SPANS_HEADER + SUFFIX;
  const maxSpanBytes = maxPacketSize - overhead;
  scratch.pos = 0;
  const ends: number[] = [];
  const starts: number[] = [];
  let dropped = 0;
  for (const span of spans) {
    const start = scratch.pos;
    try {
      writeSpan(scratch, span);
    } catch (err) {
      scratch.pos = start;
      dropped++;
      logOnce('encode-span', 'a span could not be encoded to Thrift; dropped', err);
      continue;
    }
    if (scratch.pos - start > maxSpanBytes) {
      scratch.pos = start;
      dropped++;
      logOnce('span-too-large', `a span larger than ${maxSpanBytes} bytes was dropped`);
      continue;
    }
    starts.push(start);
    ends.push(scratch.pos);
  }
  const packets: Array<{ buffer: Buffer; spans: number }> = [];
  let i = 0;
  while (i < starts.length) {
    let j = i;
    while (j < starts.length && ends[j] - starts[i] <= maxSpanBytes) j++;
    const body = scratch.buf.subarray(starts[i], ends[j - 1]);
    const buffer = Buffer.allocUnsafe(overhead + body.length);
    let o = PREFIX.copy(buffer, 0);
    o += processBytes.copy(buffer, o);
    buffer[o] = T_LIST;
    buffer.writeInt16BE(2, o + 1);
    buffer[o + 3] = T_STRUCT;
    buffer.writeInt32BE(j - i, o + 4);
    o += SPANS_HEADER;
    o += body.copy(buffer, o);
    buffer[o] = T_STOP;
    buffer[o + 1] = T_STOP;
    packets.push({ buffer, spans: j - i });
    i = j;
  }
  return { packets, dropped };
}

function isUdpSender(sender: unknown): sender is JaegerUdpSender {
  const s = sender as Partial<JaegerUdpSender> | undefined;
  return (
    !!s &&
    // Our sender's socket is made on first use: do not make it just to look at it.
    (s instanceof QueuedUdpSender || typeof s._client?.send === 'function') &&
    typeof s._host === 'string' &&
    typeof s._port === 'number' &&
    typeof s._maxPacketSize === 'number' &&
    typeof s.flush === 'function'
  );
}

const queues = new WeakMap<object, JaegerSpanInternals[]>();

/** Spans queued by `queueReports` on `reporter` and not yet sent. */
export function queuedSpans(reporter: object): number {
  return queues.get(reporter)?.length ?? 0;
}

/**
 * Makes `reporter` (a jaeger `RemoteReporter`) queue its spans and encode
 * them in its flush. Returns false, changing nothing, when its sender is not
 * jaeger's UDP sender (e.g. the HTTP sender) or its shape is not the one known.
 */
export function queueReports(reporter: JaegerReporterInternals): boolean {
  const sender = reporter._sender;
  if (!isUdpSender(sender) || typeof reporter.report !== 'function' || typeof reporter.flush !== 'function') return false;
  if (queues.has(reporter)) return true;
  const queue: JaegerSpanInternals[] = [];
  queues.set(reporter, queue);
  const scratch = new ThriftWriter();
  let processBytes: Buffer | undefined;
  let processOf: JaegerProcess | undefined;
  let scheduled = false;

  const metric = (name: 'reporterSuccess' | 'reporterDropped' | 'reporterFailure', n: number): void => {
    try {
      reporter._metrics?.[name]?.increment(n);
    } catch {
      // metrics are best effort
    }
  };

  /** Encodes and sends everything queued; `done` when every packet's send has called back. */
  const drain = (done?: () => void): void => {
    const process = reporter._process;
    if (queue.length === 0 || process === undefined) {
      done?.();
      return;
    }
    const spans = queue.splice(0, queue.length);
    let pending = 1;
    const settle = (): void => {
      if (--pending === 0) done?.();
    };
    try {
      if (processOf !== process) {
        processBytes = encodeProcess(process);
        processOf = process;
      }
      const { packets, dropped } = encodeBatches(processBytes!, spans, sender._maxPacketSize, scratch);
      if (dropped > 0) metric('reporterDropped', dropped);
      suppressInstrumentation(() => {
        for (const p of packets) {
          pending++;
          sender._client.send(p.buffer, 0, p.buffer.length, sender._port, sender._host, (err) => {
            if (err) {
              logOnce('udp-send', 'sending spans over UDP failed', err);
              metric('reporterFailure', p.spans);
            } else {
              metric('reporterSuccess', p.spans);
            }
            settle();
          });
        }
      });
    } catch (err) {
      logOnce('drain', 'could not send the queued spans; dropped', err);
      metric('reporterDropped', spans.length);
    }
    settle();
  };

  reporter.report = function report(span: JaegerSpanInternals): void {
    queue.push(span);
    if (queue.length >= FLUSH_NOW_AT) {
      drain();
    } else if (queue.length >= FLUSH_AT && !scheduled) {
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        drain();
      });
    }
  };

  const originalFlush = reporter.flush;
  reporter.flush = function flush(this: JaegerReporterInternals, callback?: () => void): void {
    // The queue first, then jaeger's own flush (its sender's batch is empty
    // now; it still reports "process not set" and calls back as before).
    drain(() => originalFlush.call(this, callback));
  };
  return true;
}

/** jaeger's UDPSender defaults (dist/src/reporters/udp_sender.js). */
const DEFAULT_HOST = 'localhost';
const DEFAULT_PORT = 6832;
const DEFAULT_SOCKET_TYPE = 'udp4';
const DEFAULT_MAX_PACKET_SIZE = 65000;

interface SenderOptions {
  host?: string;
  port?: number;
  socketType?: dgram.SocketType;
  maxPacketSize?: number;
  logger?: { error(msg: string): void };
}

/**
 * The sender half of the queued reporter: jaeger's UDPSender's options and
 * socket, nothing else. `queueReports` does the queueing and encoding; this
 * sender on its own sends nothing (`append` drops, and says so once).
 *
 * The socket is made on first use (the first flush with spans to send), not
 * at construction: making it loads `dns` and opens a handle, about a
 * millisecond of every process's startup, for an application that may not
 * finish a span for a while, or ever.
 */
export class QueuedUdpSender {
  readonly _host: string;
  readonly _port: number;
  readonly _maxPacketSize: number;
  _process: JaegerProcess | undefined;
  private readonly socketType: dgram.SocketType;
  private readonly logger: SenderOptions['logger'];
  private socket: dgram.Socket | undefined;
  private unrefed = false;
  private closed = false;

  constructor(options: SenderOptions = {}) {
    this._host = options.host || DEFAULT_HOST;
    this._port = options.port || DEFAULT_PORT;
    this._maxPacketSize = options.maxPacketSize || DEFAULT_MAX_PACKET_SIZE;
    this.socketType = options.socketType || DEFAULT_SOCKET_TYPE;
    this.logger = options.logger;
  }

  /** The UDP socket (jaeger's UDPSender field name), made on first use. */
  get _client(): dgram.Socket {
    if (this.socket === undefined) {
      const socket = dgram.createSocket(this.socketType);
      const logger = this.logger;
      socket.on('error', (err) => {
        try {
          logger?.error(`error sending spans over UDP: ${String(err)}`);
        } catch {
          // the application's logger must not break the reporter
        }
        logOnce('udp-socket', 'UDP socket error', err);
      });
      if (this.unrefed) socket.unref();
      // Closed before it was ever used: sends fail as on jaeger's closed socket.
      if (this.closed) socket.close();
      this.socket = socket;
    }
    return this.socket;
  }

  /** The socket will not keep the process alive (now, or once it is made). */
  unref(): void {
    this.unrefed = true;
    this.socket?.unref();
  }

  setProcess(process: JaegerProcess): void {
    this._process = process;
  }

  append(_span: unknown, callback?: (numSpans: number, err?: string) => void): void {
    logOnce('sender-append', 'QueuedUdpSender.append called: spans reach it through queueReports only; dropped');
    callback?.(1, 'QueuedUdpSender sends through queueReports only');
  }

  flush(callback?: (numSpans: number, err?: string) => void): void {
    callback?.(0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket?.close();
  }
}

interface UdpSenderModule {
  default: unknown;
}

/**
 * Runs `build` (jaeger's initTracer) with jaeger's UDPSender replaced by
 * `QueuedUdpSender`. jaeger's Configuration reads its sender class from the
 * udp_sender module's exports when it builds the reporter
 * (dist/src/configuration.js `_getReporter`), so the swap is scoped to this
 * call and undone whatever happens. If jaeger's files are not where 3.x keeps
 * them, `build` runs unchanged.
 */
export function withQueuedUdpSender<T>(build: () => T): T {
  let mod: UdpSenderModule | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    mod = require('jaeger-client/dist/src/reporters/udp_sender') as UdpSenderModule;
  } catch (err) {
    logOnce('udp-sender-module', "jaeger-client's udp_sender module not found; its own sender is used", err);
  }
  if (mod === undefined || typeof mod.default !== 'function') return build();
  const original = mod.default;
  try {
    mod.default = QueuedUdpSender;
  } catch {
    return build();
  }
  try {
    return build();
  } finally {
    mod.default = original;
  }
}
