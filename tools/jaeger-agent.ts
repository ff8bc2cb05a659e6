/**
 * A stand-in for the Jaeger agent: listens on UDP, decodes the Thrift
 * `emitBatch` messages that jaeger-client's UDP sender writes (binary
 * protocol, the agent's port 6832), with the IDL that jaeger-client ships,
 * and keeps the spans. Used by the end-to-end tests and the demo.
 */
import * as dgram from 'dgram';
import type { AddressInfo } from 'net';
import * as path from 'path';

interface ThriftTag {
  key: string;
  vType: string | number;
  vStr?: string | null;
  vDouble?: number | null;
  vBool?: boolean | null;
  vLong?: Buffer | number | null;
  vBinary?: Buffer | null;
}
interface ThriftSpan {
  traceIdLow: Buffer;
  traceIdHigh: Buffer;
  spanId: Buffer;
  parentSpanId: Buffer;
  operationName: string;
  references?: Array<{ refType: string | number; traceIdLow: Buffer; traceIdHigh: Buffer; spanId: Buffer }> | null;
  flags: number;
  startTime: Buffer | number;
  duration: Buffer | number;
  tags?: ThriftTag[] | null;
  logs?: Array<{ timestamp: Buffer | number; fields: ThriftTag[] }> | null;
}
export interface ThriftBatch {
  process: { serviceName: string; tags?: ThriftTag[] | null };
  spans: ThriftSpan[];
}
interface AgentThrift {
  Agent: {
    emitBatch: {
      argumentsMessageRW: {
        readFrom(buffer: Buffer, offset: number): { err: Error | null; value: { body: { batch: ThriftBatch } } };
      };
    };
  };
}

/** A span as the agent received it. Ids are hex strings without leading zeros, as jaeger-client prints them. */
export interface ReceivedSpan {
  serviceName: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  operationName: string;
  flags: number;
  /** Microseconds since the epoch. */
  startTime: number;
  /** Microseconds. */
  duration: number;
  tags: Record<string, string | number | boolean>;
  logs: Array<Record<string, string | number | boolean>>;
}

function loadAgentThrift(): AgentThrift {
  const jaegerMain = require.resolve('jaeger-client');
  // thriftrw is jaeger-client's own dependency: resolve it from there.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Thrift } = require(require.resolve('thriftrw', { paths: [jaegerMain] })) as {
    Thrift: new (options: object) => AgentThrift;
  };
  return new Thrift({
    entryPoint: path.join(path.dirname(jaegerMain), 'thriftrw-idl', 'agent.thrift'),
    allowOptionalArguments: true,
    allowFilesystemAccess: true,
  });
}

function hex(value: Buffer | number | null | undefined): string {
  if (value === null || value === undefined) return '0';
  if (typeof value === 'number') return value.toString(16);
  const s = value.toString('hex').replace(/^0+/, '');
  return s === '' ? '0' : s;
}

function num(value: Buffer | number | null | undefined): number {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'number') return value;
  return Number(value.readBigInt64BE(0));
}

function tagValue(t: ThriftTag): string | number | boolean {
  switch (String(t.vType)) {
    case 'STRING':
    case '0':
      return t.vStr ?? '';
    case 'DOUBLE':
    case '1':
      return t.vDouble ?? 0;
    case 'BOOL':
    case '2':
      return t.vBool ?? false;
    case 'LONG':
    case '3':
      return num(t.vLong);
    default:
      return t.vBinary ? t.vBinary.toString('hex') : '';
  }
}

function tagObject(tags: ThriftTag[] | null | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const t of tags ?? []) out[t.key] = tagValue(t);
  return out;
}

function traceIdOf(span: ThriftSpan): string {
  const high = hex(span.traceIdHigh);
  const low = span.traceIdLow.toString('hex');
  return high === '0' ? hex(span.traceIdLow) : high + low;
}

/** The spans of a decoded Thrift `Batch` (also what the HTTP collector stand-in receives). */
export function spansOfBatch(batch: ThriftBatch): ReceivedSpan[] {
  return batch.spans.map((s) => ({
    serviceName: batch.process.serviceName,
    traceId: traceIdOf(s),
    spanId: hex(s.spanId),
    parentSpanId: hex(s.parentSpanId),
    operationName: s.operationName,
    flags: s.flags,
    startTime: num(s.startTime),
    duration: num(s.duration),
    tags: tagObject(s.tags),
    logs: (s.logs ?? []).map((l) => tagObject(l.fields)),
  }));
}

export interface JaegerAgent {
  port: number;
  spans: ReceivedSpan[];
  /** Batches that could not be decoded. */
  errors: Error[];
  waitForSpans(n: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

/** Starts an agent stand-in on a random UDP port of 127.0.0.1 (or the given one). */
export function startJaegerAgent(port = 0): Promise<JaegerAgent> {
  const thrift = loadAgentThrift();
  const socket = dgram.createSocket('udp4');
  const spans: ReceivedSpan[] = [];
  const errors: Error[] = [];
  socket.on('message', (msg) => {
    const { err, value } = thrift.Agent.emitBatch.argumentsMessageRW.readFrom(msg, 0);
    if (err) {
      errors.push(err);
      return;
    }
    spans.push(...spansOfBatch(value.body.batch));
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => {
      const agent: JaegerAgent = {
        port: (socket.address() as AddressInfo).port,
        spans,
        errors,
        async waitForSpans(n, timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          while (spans.length < n) {
            if (Date.now() > deadline) throw new Error(`agent got ${spans.length} spans, expected ${n}`);
            await new Promise((r) => setTimeout(r, 10));
          }
          return spans;
        },
        close: () => new Promise<void>((done) => socket.close(() => done())),
      };
      resolve(agent);
    });
  });
}
