/**
 * Renders the spans of one trace as an indented waterfall for a terminal:
 *
 *   GET                       demo-frontend │████████████████████████│ 31.2 ms  http.status_code=200 ...
 *   ├─ redis:GET              demo-frontend │█                       │  0.6 ms  db.statement="GET ..."
 *   └─ GET                    demo-frontend │   ██████████           │ 12.0 ms  component=axios ...
 *      └─ GET /profile        demo-backend  │    ████████            │  9.1 ms  ...
 *         └─ amqp:publish     demo-backend  │     █                  │   <1 ms  component=amqplib ...
 *            └┈ amqp:consume  demo-backend  │       ███████████      │ 14.0 ms  follows from amqp:publish ...
 *
 * Children are ordered by start time; a span whose parent is not in the
 * trace is shown as a root. A span whose parent is a followsFrom reference
 * (`followsFrom`: a consumer span under the producer span of its message)
 * hangs from a dotted line (`├┈`, `└┈`) and says so in its tag column.
 * Used by the console exporter (console.ts) and by `npm run demo`, which
 * joins the spans of two services.
 */

/** A finished span as the waterfall needs it. Ids are hex strings; `parentSpanId` is '0' for none. */
export interface WaterfallSpan {
  serviceName: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  operationName: string;
  /** Microseconds since the epoch. */
  startTime: number;
  /** Microseconds. */
  duration: number;
  tags: Record<string, string | number | boolean>;
  logs: Array<Record<string, string | number | boolean>>;
  /** The parent is a followsFrom reference, not childOf. Default: false. */
  followsFrom?: boolean;
}

export interface RenderOptions {
  /** ANSI colours. */
  color: boolean;
  /** Width of the duration bar, in characters. */
  barWidth?: number;
}

interface Node {
  span: WaterfallSpan;
  children: Node[];
}

const HIDDEN_TAGS = new Set(['span.kind', 'sampler.type', 'sampler.param', 'internal.span.format']);

function ms(us: number): string {
  const v = us / 1000;
  if (v < 1) return '<1 ms'; // jaeger-client's clock counts whole milliseconds
  return `${Number.isInteger(v) || v >= 100 ? Math.round(v) : v.toFixed(1)} ms`;
}

function quote(value: string | number | boolean, max = 70): string {
  const s = String(value);
  const cut = s.length > max ? `${s.slice(0, max - 1)}…` : s;
  return typeof value === 'string' && /\s/.test(cut) ? `"${cut}"` : cut;
}

/** The few tags that say what a span did. */
function keyTags(span: WaterfallSpan): string[] {
  const t = span.tags;
  const out: string[] = [];
  const add = (key: string): void => {
    if (t[key] !== undefined) out.push(`${key}=${quote(t[key])}`);
  };
  const kind = t['span.kind'];
  if ((kind === 'client' || kind === 'producer' || kind === 'consumer') && t.component !== undefined) add('component');
  add('http.status_code');
  if (t['db.statement'] !== undefined) add('db.statement');
  else add('http.url');
  for (const key of Object.keys(t)) {
    if (out.length >= 4) break;
    if (HIDDEN_TAGS.has(key) || key === 'error' || key.startsWith('peer.') || key.startsWith('db.') || key.startsWith('http.')) continue;
    if (key === 'component' || key === 'jaeger-debug-id') continue;
    if (key === 'amqp.routing_key' && t[key] === t['message_bus.destination']) continue; // the default exchange: the queue again
    add(key);
  }
  return out;
}

function errorNote(span: WaterfallSpan): string | undefined {
  if (span.tags.error !== true) return undefined;
  const log = span.logs.find((l) => l.event === 'error');
  const message = log?.message ?? log?.['error.kind'];
  return message !== undefined ? `ERROR ${quote(String(message), 60)}` : 'ERROR';
}

function buildTree(spans: WaterfallSpan[]): Node[] {
  const nodes = new Map<string, Node>();
  for (const span of spans) nodes.set(span.spanId, { span, children: [] });
  const roots: Node[] = [];
  for (const node of nodes.values()) {
    const parent = node.span.parentSpanId !== '0' ? nodes.get(node.span.parentSpanId) : undefined;
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node);
  }
  const byStart = (a: Node, b: Node): number => a.span.startTime - b.span.startTime;
  for (const node of nodes.values()) node.children.sort(byStart);
  return roots.sort(byStart);
}

interface Row {
  prefix: string;
  span: WaterfallSpan;
  /** The parent shown above, when the span follows from it. */
  followed?: WaterfallSpan;
}

function flatten(nodes: Node[], lead: string, rows: Row[], parent: WaterfallSpan | undefined): void {
  nodes.forEach((node, i) => {
    const last = i === nodes.length - 1;
    const follows = parent !== undefined && node.span.followsFrom === true;
    const line = follows ? '┈ ' : '─ ';
    rows.push({
      prefix: parent === undefined ? '' : `${lead}${last ? '└' : '├'}${line}`,
      span: node.span,
      followed: follows ? parent : undefined,
    });
    flatten(node.children, parent === undefined ? '' : `${lead}${last ? '   ' : '│  '}`, rows, node.span);
  });
}

const PALETTE = [36, 35, 33, 32, 34]; // cyan, magenta, yellow, green, blue

/** The waterfall of one trace, as lines of text. */
export function renderTrace(spans: WaterfallSpan[], options: RenderOptions): string[] {
  if (spans.length === 0) return [];
  const c = (code: number | string, s: string): string => (options.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const width = options.barWidth ?? 32;
  // loops, not Math.min(...spread): a trace may have more spans than a call has arguments
  let start = Infinity;
  let end = -Infinity;
  for (const s of spans) {
    if (s.startTime < start) start = s.startTime;
    if (s.startTime + s.duration > end) end = s.startTime + s.duration;
  }
  const total = Math.max(end - start, 1);
  const rows: Row[] = [];
  flatten(buildTree(spans), '', rows, undefined);
  const services = [...new Set(spans.map((s) => s.serviceName))];
  const nameWidth = rows.reduce((w, r) => Math.max(w, r.prefix.length + r.span.operationName.length), 0);
  const serviceWidth = services.reduce((w, s) => Math.max(w, s.length), 0);
  return rows.map(({ prefix, span, followed }) => {
    const from = Math.min(width - 1, Math.floor(((span.startTime - start) / total) * width));
    const len = Math.max(1, Math.min(width - from, Math.round((span.duration / total) * width)));
    const bar = `${' '.repeat(from)}${'█'.repeat(len)}${' '.repeat(width - from - len)}`;
    const colour = PALETTE[services.indexOf(span.serviceName) % PALETTE.length];
    const failed = errorNote(span);
    const name = `${prefix}${span.operationName}`.padEnd(nameWidth);
    const tagText = [...(followed ? [`follows from ${followed.operationName}`] : []), ...keyTags(span)].join('  ');
    return [
      c(span.tags['span.kind'] === 'server' ? 1 : 0, name),
      c(colour, span.serviceName.padEnd(serviceWidth)),
      `│${c(failed ? 31 : colour, bar)}│`,
      `${ms(span.duration).padStart(7)} `,
      failed ? `${c(31, failed)}  ${c(2, tagText)}` : c(2, tagText),
    ].join(' ');
  });
}

/** Groups spans by trace, the traces in the order they started. */
export function groupByTrace(spans: WaterfallSpan[]): WaterfallSpan[][] {
  const traces = new Map<string, WaterfallSpan[]>();
  for (const span of spans) {
    let list = traces.get(span.traceId);
    if (list === undefined) traces.set(span.traceId, (list = []));
    list.push(span);
  }
  const first = (list: WaterfallSpan[]): number => list.reduce((m, s) => Math.min(m, s.startTime), Infinity);
  return [...traces.values()].sort((a, b) => first(a) - first(b));
}
