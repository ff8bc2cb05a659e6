/**
 * An OTLP/HTTP traces receiver for the tests: a local `http.createServer`
 * that decodes each protobuf `ExportTraceServiceRequest` with protobufjs (a
 * decoder independent of the OpenTelemetry encoder under test), from the
 * message definitions of opentelemetry-proto (collector/trace/v1,
 * trace/v1, common/v1, resource/v1: the field numbers and types of the
 * messages read here, written out as a protobufjs JSON descriptor).
 */
import * as http from 'http';
import type { AddressInfo } from 'net';
// protobufjs: installed with the OpenTelemetry packages (via @grpc/proto-loader)
import * as protobuf from 'protobufjs';

const anyValue = {
  oneofs: { value: { oneof: ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'arrayValue', 'kvlistValue', 'bytesValue'] } },
  fields: {
    stringValue: { type: 'string', id: 1 },
    boolValue: { type: 'bool', id: 2 },
    intValue: { type: 'int64', id: 3 },
    doubleValue: { type: 'double', id: 4 },
    arrayValue: { type: 'ArrayValue', id: 5 },
    kvlistValue: { type: 'KeyValueList', id: 6 },
    bytesValue: { type: 'bytes', id: 7 },
  },
};

const descriptor = {
  nested: {
    common: {
      nested: {
        AnyValue: anyValue,
        ArrayValue: { fields: { values: { rule: 'repeated', type: 'AnyValue', id: 1 } } },
        KeyValueList: { fields: { values: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
        KeyValue: { fields: { key: { type: 'string', id: 1 }, value: { type: 'AnyValue', id: 2 } } },
        InstrumentationScope: {
          fields: {
            name: { type: 'string', id: 1 },
            version: { type: 'string', id: 2 },
            attributes: { rule: 'repeated', type: 'KeyValue', id: 3 },
            droppedAttributesCount: { type: 'uint32', id: 4 },
          },
        },
        Resource: {
          fields: {
            attributes: { rule: 'repeated', type: 'KeyValue', id: 1 },
            droppedAttributesCount: { type: 'uint32', id: 2 },
          },
        },
      },
    },
    trace: {
      nested: {
        ExportTraceServiceRequest: { fields: { resourceSpans: { rule: 'repeated', type: 'ResourceSpans', id: 1 } } },
        ResourceSpans: {
          fields: {
            resource: { type: 'common.Resource', id: 1 },
            scopeSpans: { rule: 'repeated', type: 'ScopeSpans', id: 2 },
            schemaUrl: { type: 'string', id: 3 },
          },
        },
        ScopeSpans: {
          fields: {
            scope: { type: 'common.InstrumentationScope', id: 1 },
            spans: { rule: 'repeated', type: 'Span', id: 2 },
            schemaUrl: { type: 'string', id: 3 },
          },
        },
        Span: {
          fields: {
            traceId: { type: 'bytes', id: 1 },
            spanId: { type: 'bytes', id: 2 },
            traceState: { type: 'string', id: 3 },
            parentSpanId: { type: 'bytes', id: 4 },
            flags: { type: 'fixed32', id: 16 },
            name: { type: 'string', id: 5 },
            kind: { type: 'int32', id: 6 },
            startTimeUnixNano: { type: 'fixed64', id: 7 },
            endTimeUnixNano: { type: 'fixed64', id: 8 },
            attributes: { rule: 'repeated', type: 'common.KeyValue', id: 9 },
            droppedAttributesCount: { type: 'uint32', id: 10 },
            events: { rule: 'repeated', type: 'Event', id: 11 },
            droppedEventsCount: { type: 'uint32', id: 12 },
            links: { rule: 'repeated', type: 'Link', id: 13 },
            droppedLinksCount: { type: 'uint32', id: 14 },
            status: { type: 'Status', id: 15 },
          },
          nested: {
            Event: {
              fields: {
                timeUnixNano: { type: 'fixed64', id: 1 },
                name: { type: 'string', id: 2 },
                attributes: { rule: 'repeated', type: 'common.KeyValue', id: 3 },
                droppedAttributesCount: { type: 'uint32', id: 4 },
              },
            },
            Link: {
              fields: {
                traceId: { type: 'bytes', id: 1 },
                spanId: { type: 'bytes', id: 2 },
                traceState: { type: 'string', id: 3 },
                attributes: { rule: 'repeated', type: 'common.KeyValue', id: 4 },
                droppedAttributesCount: { type: 'uint32', id: 5 },
                flags: { type: 'fixed32', id: 6 },
              },
            },
          },
        },
        Status: { fields: { message: { type: 'string', id: 2 }, code: { type: 'int32', id: 3 } } },
      },
    },
  },
};

const ExportTraceServiceRequest = protobuf.Root.fromJSON(descriptor).lookupType('trace.ExportTraceServiceRequest');

type Value = string | number | boolean | Value[] | { [key: string]: Value } | Buffer | null;

interface RawKeyValue {
  key: string;
  value?: Record<string, unknown>;
}

/** An AnyValue as protobufjs' toObject gives it with `oneofs: true`: `value` names the field that is set. */
function valueOf(v: Record<string, unknown> | undefined): Value {
  if (!v || typeof v.value !== 'string') return null;
  const x = v[v.value];
  switch (v.value) {
    case 'intValue':
      return Number(x as string);
    case 'bytesValue':
      return Buffer.from(x as Uint8Array);
    case 'arrayValue':
      return ((x as { values?: Array<Record<string, unknown>> }).values ?? []).map(valueOf);
    case 'kvlistValue':
      return attributesOf((x as { values?: RawKeyValue[] }).values);
    default:
      return x as string | number | boolean;
  }
}

function attributesOf(list: RawKeyValue[] | undefined): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const kv of list ?? []) out[kv.key] = valueOf(kv.value);
  return out;
}

const hex = (b: Uint8Array | undefined): string => (b && b.length > 0 ? Buffer.from(b).toString('hex') : '');

/** A decoded span, with its resource's attributes. */
export interface OtlpSpan {
  resource: Record<string, Value>;
  scope: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, Value>;
  /** The attributes' keys as sent, in order (a key sent twice shows twice). */
  attributeKeys: string[];
  events: Array<{ name: string; timeUnixNano: bigint; attributes: Record<string, Value> }>;
  links: Array<{ traceId: string; spanId: string; attributes: Record<string, Value> }>;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  flags: number;
}

export interface OtlpRequest {
  url: string;
  headers: http.IncomingHttpHeaders;
  spans: number;
}

export interface OtlpReceiver {
  port: number;
  /** `http://127.0.0.1:PORT/v1/traces` */
  url: string;
  spans: OtlpSpan[];
  requests: OtlpRequest[];
  errors: Error[];
  /** Status to answer with (default 200). */
  status: number;
  /**
   * Requests still to be answered 503 with `Retry-After: 1` before `status`
   * applies. Not 0: OpenTelemetry's exporter (otlp-exporter-base 0.223,
   * is-export-retryable.js) turns `Retry-After: 0` into a -1 ms timer, which
   * Node 24 reports as a TimeoutNegativeWarning on stderr (an upstream bug,
   * noted for the next round).
   */
  unavailable: number;
  waitForSpans(n: number, timeoutMs?: number): Promise<OtlpSpan[]>;
  close(): Promise<void>;
}

const u64 = (v: unknown): bigint => BigInt((v as string | undefined) ?? 0);

/** The spans of one OTLP/protobuf request body. */
export function decodeOtlpRequest(body: Buffer): OtlpSpan[] {
  const decoded = ExportTraceServiceRequest.decode(body);
  const message = ExportTraceServiceRequest.toObject(decoded, { longs: String, oneofs: true }) as {
    resourceSpans?: Array<{
      resource?: { attributes?: RawKeyValue[] };
      scopeSpans?: Array<{ scope?: { name?: string }; spans?: Array<Record<string, unknown>> }>;
    }>;
  };
  const out: OtlpSpan[] = [];
  for (const rs of message.resourceSpans ?? []) {
    const resource = attributesOf(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          resource,
          scope: ss.scope?.name ?? '',
          traceId: hex(s.traceId as Uint8Array),
          spanId: hex(s.spanId as Uint8Array),
          parentSpanId: hex(s.parentSpanId as Uint8Array),
          name: s.name as string,
          kind: (s.kind as number) ?? 0,
          startTimeUnixNano: u64(s.startTimeUnixNano),
          endTimeUnixNano: u64(s.endTimeUnixNano),
          attributes: attributesOf(s.attributes as RawKeyValue[]),
          attributeKeys: ((s.attributes as RawKeyValue[]) ?? []).map((kv) => kv.key),
          events: ((s.events as Array<Record<string, unknown>>) ?? []).map((e) => ({
            name: e.name as string,
            timeUnixNano: u64(e.timeUnixNano),
            attributes: attributesOf(e.attributes as RawKeyValue[]),
          })),
          links: ((s.links as Array<Record<string, unknown>>) ?? []).map((l) => ({
            traceId: hex(l.traceId as Uint8Array),
            spanId: hex(l.spanId as Uint8Array),
            attributes: attributesOf(l.attributes as RawKeyValue[]),
          })),
          status: {
            code: (s.status as { code?: number } | undefined)?.code ?? 0,
            message: (s.status as { message?: string } | undefined)?.message ?? '',
          },
          flags: (s.flags as number) ?? 0,
        });
      }
    }
  }
  return out;
}

export function startOtlpReceiver(): Promise<OtlpReceiver> {
  const receiver = {
    spans: [] as OtlpSpan[],
    requests: [] as OtlpRequest[],
    errors: [] as Error[],
    status: 200,
    unavailable: 0,
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const record: OtlpRequest = { url: req.url ?? '', headers: req.headers, spans: 0 };
      receiver.requests.push(record);
      if (receiver.unavailable > 0) {
        receiver.unavailable--;
        res.statusCode = 503;
        res.setHeader('retry-after', '1');
        res.end();
        return;
      }
      if (receiver.status !== 200) {
        res.statusCode = receiver.status;
        res.end();
        return;
      }
      try {
        const spans = decodeOtlpRequest(Buffer.concat(chunks));
        record.spans = spans.length;
        receiver.spans.push(...spans);
        res.setHeader('content-type', 'application/x-protobuf');
        res.end();
      } catch (err) {
        receiver.errors.push(err as Error);
        res.statusCode = 400;
        res.end();
      }
    });
  });
  const sockets = new Set<import('net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      resolve(
        Object.assign(receiver, {
          port,
          url: `http://127.0.0.1:${port}/v1/traces`,
          async waitForSpans(n: number, timeoutMs = 5000) {
            const deadline = Date.now() + timeoutMs;
            while (receiver.spans.length < n) {
              if (Date.now() > deadline) throw new Error(`receiver got ${receiver.spans.length} spans, expected ${n}`);
              await new Promise((r) => setTimeout(r, 10));
            }
            return receiver.spans;
          },
          close: () =>
            new Promise<void>((done) => {
              for (const s of sockets) s.destroy();
              server.close(() => done());
            }),
        }),
      );
    });
  });
}
