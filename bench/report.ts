/**
 * Turns the workers' results into the one table the harness prints (and
 * writes to bench/RESULTS.md), and checks the issue's targets against it.
 */
import { CLIENT_NAMES, type ClientName } from './clients';
import { FLUSH_WINDOW_MS, MODE_IDS, MODE_LABELS, type ModeId } from './modes';
import { median, type Summary } from './stats';
import { STARTUP_BASELINE, STARTUP_LABELS, STARTUP_VARIANTS, type StartupResult } from './startup';
import type { FlushResult, LatencyResult, MemoryResult, WorkerOutput } from './worker';

/** Per mode, the OpenTelemetry mode its added cost is compared with: spans dropped with dropped, exported with exported. */
const PEER: Partial<Record<ModeId, ModeId>> = { '2a': '4', '2b': '4', '3': '4e', '3o': '4e', '3u': '4u' };

/**
 * "Flat" memory: after GC, the instrumented run keeps at most this many bytes
 * per call more than the uninstrumented one, or at most FLAT_NOISE_BYTES in
 * all (the GC's own heuristics move a few hundred KiB either way, which for a
 * slow client's few thousand calls is more than 64 bytes a call).
 */
const FLAT_BYTES_PER_CALL = 64;
const FLAT_NOISE_BYTES = 256 * 1024;

function isFlat(m: MemoryResult): boolean {
  const extra = m.on!.after - m.on!.before - (m.off!.after - m.off!.before);
  return extra <= Math.max(FLAT_NOISE_BYTES, FLAT_BYTES_PER_CALL * m.calls);
}

function f(n: number | undefined, digits = 1): string {
  if (n === undefined || Number.isNaN(n)) return 'n/a';
  return n.toFixed(digits);
}

function spread(s: Summary): string {
  return `${f(s.median)} [${f(s.p25)}, ${f(s.p75)}]`;
}

function find(outputs: WorkerOutput[], mode: ModeId, client: ClientName, concurrency: number): LatencyResult | undefined {
  return outputs.find((o) => o.mode === mode)?.latency.find((l) => l.client === client && l.concurrency === concurrency);
}

export interface Check {
  target: string;
  met: boolean | undefined;
  detail: string;
}

/** `mine / theirs` as text, or why there is no ratio. */
function ratio(mine: number | undefined, theirs: number | undefined): string {
  if (mine === undefined || theirs === undefined) return 'n/a';
  if (theirs <= 0) return 'OTel ≤ 0';
  return f(mine / theirs, 2);
}

/**
 * The table issue 18 asks for, one row per client and concurrency: added CPU
 * per call of each comparison's two sides and their ratio, the no-op tracer,
 * the A/A control, and whether the control's interquartile range is smaller
 * than each gap the row measures (ours − OTel, dropped and exported), i.e.
 * whether the harness resolves the difference it claims.
 */
export function issueTable(outputs: WorkerOutput[], concurrencies: number[]): string {
  const lines = [
    '| client | in flight | ours, spans dropped (2b) | OTel, spans dropped (4) | ratio 2b/4 | ours, UDP reporter (3) | ours, OTLP exporter (3o) | ' +
      'OTel, BatchSpanProcessor + OTLP/proto (4e) | ratio 3/4e | ratio 3o/4e | ours, no-op tracer (2a) | A/A control (0) | A/A IQR < gaps? |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const client of CLIENT_NAMES) {
    for (const n of concurrencies) {
      const get = (mode: ModeId): Summary | undefined => find(outputs, mode, client, n)?.added?.cpu;
      const cell = (mode: ModeId): string => {
        const r = find(outputs, mode, client, n);
        if (r === undefined) return '–';
        if (r.added === undefined) return `n/a (${r.unsupported ?? 'not measured'})`;
        return spread(r.added.cpu);
      };
      if (MODE_IDS.every((m) => find(outputs, m, client, n) === undefined)) continue;
      const control = get('0');
      const iqr = control ? control.p75 - control.p25 : undefined;
      const gaps: Array<[string, number]> = [];
      const gap = (label: string, a: ModeId, b: ModeId): void => {
        const x = get(a);
        const y = get(b);
        if (x !== undefined && y !== undefined) gaps.push([label, Math.abs(x.median - y.median)]);
      };
      gap('2b−4', '2b', '4');
      gap('3−4e', '3', '4e');
      gap('3o−4e', '3o', '4e');
      let resolved: string;
      if (iqr === undefined) resolved = 'n/a (no control)';
      else if (gaps.length === 0) {
        // No OpenTelemetry side (bullmq): the gap measured is our own added cost.
        const own = get('2b') ?? get('3');
        resolved = own === undefined ? 'n/a' : `${iqr < Math.abs(own.median) ? 'yes' : 'NO'}: IQR ${f(iqr)} vs ours ${f(own.median)}`;
      } else {
        const small = gaps.filter(([, g]) => iqr >= g);
        resolved =
          small.length === 0
            ? `yes: IQR ${f(iqr)} < ${f(Math.min(...gaps.map(([, g]) => g)))}`
            : `NO: IQR ${f(iqr)} ≥ ${small.map(([l, g]) => `|${l}| ${f(g)}`).join(', ')}`;
      }
      lines.push(
        `| ${client} | ${n} | ${cell('2b')} | ${cell('4')} | ${ratio(get('2b')?.median, get('4')?.median)} | ${cell('3')} | ${cell('3o')} | ${cell('4e')} | ` +
          `${ratio(get('3')?.median, get('4e')?.median)} | ${ratio(get('3o')?.median, get('4e')?.median)} | ${cell('2a')} | ${cell('0')} | ${resolved} |`,
      );
    }
  }
  return lines.join('\n');
}

export function flushTable(results: FlushResult[]): string {
  const lines = [
    '| exporter (mode) | spans | event-loop delay p50 ms | p99 ms | max ms | spans finished and flushed in ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const label = r.mode === '3o' ? 'this package\'s OTLP exporter, closed loopback port (3o)' : 'this package\'s UDP reporter to the local sink (3)';
    const took = f(r.flushMs, 0) + (r.flushMs >= FLUSH_WINDOW_MS ? ` (flushTracer still waiting after ${FLUSH_WINDOW_MS} ms: the window closed)` : '');
    lines.push(`| ${label} | ${r.spans} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.max)} | ${took} |`);
  }
  return lines.join('\n');
}

export function latencyTable(outputs: WorkerOutput[], concurrencies: number[]): string {
  const lines = [
    '| client | in flight | mode | µs/call | added wall µs/call [p25, p75] | added CPU µs/call [p25, p75] | added CPU, ours / OTel | calls per block |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const client of CLIENT_NAMES) {
    for (const concurrency of concurrencies) {
      const rows = MODE_IDS.map((mode) => ({ mode, r: find(outputs, mode, client, concurrency) }));
      const present = rows.filter((x) => x.r !== undefined);
      if (present.length === 0) continue;
      // Mode 1: every worker's uninstrumented blocks are a baseline; their median.
      const baselines = present.map((x) => x.r!.off?.wall.median).filter((v): v is number => v !== undefined);
      lines.push(`| ${client} | ${concurrency} | 1 ${MODE_LABELS['1']} | ${f(median(baselines))} | | | | |`);
      for (const { mode, r } of present) {
        const label = `${mode} ${MODE_LABELS[mode]}`;
        if (r!.unsupported !== undefined || r!.added === undefined) {
          lines.push(`| ${client} | ${concurrency} | ${label} | n/a | n/a | n/a | n/a (${r!.unsupported ?? 'not measured'}) | |`);
          continue;
        }
        const peerMode = PEER[mode];
        const peer = peerMode ? find(outputs, peerMode, client, concurrency)?.added?.cpu.median : undefined;
        const text = peerMode === undefined ? '' : ratio(r!.added.cpu.median, peer);
        lines.push(
          `| ${client} | ${concurrency} | ${label} | ${f(r!.on!.wall.median)} | ${spread(r!.added.wall)} | ${spread(r!.added.cpu)} | ${text} | ${r!.block ?? ''} |`,
        );
      }
    }
  }
  return lines.join('\n');
}

export function startupTable(s: StartupResult): string {
  const lines = [
    `| command (${s.runs} alternated runs) | wall ms [p25, p75] | CPU ms [p25, p75] | added wall ms | added CPU ms |`,
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  for (const v of STARTUP_VARIANTS) {
    const base = STARTUP_BASELINE[v];
    const addedWall = v === base ? '' : f(s.wall[v].median - s.wall[base].median);
    const addedCpu = v === base ? '' : f(s.cpu[v].median - s.cpu[base].median);
    lines.push(`| \`${STARTUP_LABELS[v]}\` | ${spread(s.wall[v])} | ${spread(s.cpu[v])} | ${addedWall} | ${addedCpu} |`);
  }
  return lines.join('\n');
}

export function memoryTable(results: MemoryResult[]): string {
  const kb = (b: number): string => (b / 1024).toFixed(0);
  const lines = [
    '| client | calls | heap after GC, off: before → after (KiB) | growth off (KiB) | heap after GC, on: before → after (KiB) | growth on (KiB) | growth on, bytes/call | on − off, bytes/call | flat? |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const m of results) {
    if (!m.on || !m.off) {
      lines.push(`| ${m.client} | ${m.calls} | n/a | | n/a | | n/a (${m.unsupported ?? 'not measured'}) | | |`);
      continue;
    }
    const gOff = m.off.after - m.off.before;
    const gOn = m.on.after - m.on.before;
    const extra = (gOn - gOff) / m.calls;
    lines.push(
      `| ${m.client} | ${m.calls} | ${kb(m.off.before)} → ${kb(m.off.after)} | ${kb(gOff)} | ${kb(m.on.before)} → ${kb(m.on.after)} | ${kb(gOn)} | ${f(gOn / m.calls, 2)} | ` +
        `${f(extra, 2)} | ${isFlat(m) ? 'flat' : 'GROWS'} |`,
    );
  }
  return lines.join('\n');
}

/** Issue 18's goals, checked per client and concurrency (a client with no figure on one side is n/a, not a miss). */
export function checkTargets(
  outputs: WorkerOutput[],
  concurrencies: number[],
  startup: StartupResult | undefined,
  memory: MemoryResult[],
  flushes: FlushResult[],
): Check[] {
  const checks: Check[] = [];
  const cpu = (mode: ModeId, c: ClientName, n: number): number | undefined => find(outputs, mode, c, n)?.added?.cpu.median;
  const each = (target: string, test: (c: ClientName, n: number) => [boolean | undefined, string]): void => {
    const parts: string[] = [];
    let met: boolean | undefined;
    for (const c of CLIENT_NAMES) {
      for (const n of concurrencies) {
        if (MODE_IDS.every((m) => find(outputs, m, c, n) === undefined)) continue;
        const [ok, detail] = test(c, n);
        if (ok === undefined) {
          parts.push(`${c}/${n}: n/a`);
          continue;
        }
        met = met !== false && ok;
        parts.push(`${c}/${n}: ${detail}${ok ? '' : ' MISSED'}`);
      }
    }
    checks.push({ target, met, detail: parts.join('; ') });
  };
  const half = (mine: ModeId, theirs: ModeId) => (c: ClientName, n: number): [boolean | undefined, string] => {
    const v = cpu(mine, c, n);
    const o = cpu(theirs, c, n);
    return v === undefined || o === undefined ? [undefined, ''] : [v <= o / 2, `${f(v)} vs ${f(o / 2)}`];
  };
  each('goal 1: spans dropped, ours (2b) added CPU ≤ ½ of OTel (4)', half('2b', '4'));
  each('goal 1: exported over UDP, ours (3) added CPU ≤ ½ of OTel BatchSpanProcessor + OTLP (4e)', half('3', '4e'));
  each('goal 1: exported over OTLP, ours (3o) added CPU ≤ ½ of OTel BatchSpanProcessor + OTLP (4e)', half('3o', '4e'));
  each('goal 2: no-op tracer (2a) added CPU ≤ 1 µs/call', (c, n) => {
    const v = cpu('2a', c, n);
    return v === undefined ? [undefined, ''] : [v <= 1, f(v)];
  });
  if (startup) {
    for (const which of ['cpu', 'wall'] as const) {
      const beyond = startup[which].register.median - startup[which]['jaeger-client'].median;
      checks.push({
        target: `goal 3: startup ${which === 'cpu' ? 'CPU' : 'wall'}, \`-r ./register\` ≤ \`-r jaeger-client\` + 10 ms`,
        met: beyond <= 10,
        detail: `${f(beyond)} ms beyond (register ${f(startup[which].register.median)} ms, jaeger-client ${f(startup[which]['jaeger-client'].median)} ms)`,
      });
    }
  }
  if (memory.length > 0) {
    const measured = memory.filter((m) => m.on && m.off);
    // "Flat": what the instrumented run keeps after GC is within FLAT_BYTES_PER_CALL per call
    // of what the uninstrumented run keeps (GC heuristics move a few hundred KiB either way).
    const perCall = measured.map((m) => ({
      client: m.client,
      extra: (m.on!.after - m.on!.before - (m.off!.after - m.off!.before)) / m.calls,
    }));
    checks.push({
      target: `goal 4: memory flat (heap after GC, on − off growth ≤ ${FLAT_BYTES_PER_CALL} bytes/call or ≤ ${FLAT_NOISE_BYTES / 1024} KiB in all)`,
      met: measured.length === 0 ? undefined : measured.every(isFlat),
      detail: perCall.map((p) => `${p.client}: ${f(p.extra, 2)} B/call`).join('; ') || 'n/a',
    });
  }
  for (const r of flushes) {
    checks.push({
      target: `goal 4: event-loop delay p99 ≤ 10 ms during a flush of ${r.spans} spans (${r.mode === '3o' ? 'OTLP exporter' : 'UDP reporter'})`,
      met: r.p99 <= 10,
      detail: `p99 ${f(r.p99)} ms, max ${f(r.max)} ms`,
    });
  }
  return checks;
}

export function checksText(checks: Check[]): string {
  return checks
    .map((c) => `- ${c.met === true ? 'MET' : c.met === false ? 'MISSED' : 'N/A'}: ${c.target} — ${c.detail}`)
    .join('\n');
}
