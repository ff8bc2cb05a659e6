/**
 * Turns the workers' results into the one table the harness prints (and
 * writes to bench/RESULTS.md), and checks the issue's targets against it.
 */
import { CLIENT_NAMES, type ClientName } from './clients';
import { MODE_IDS, MODE_LABELS, type ModeId } from './modes';
import { median, type Summary } from './stats';
import { STARTUP_BASELINE, STARTUP_LABELS, STARTUP_VARIANTS, type StartupResult } from './startup';
import type { LatencyResult, MemoryResult, WorkerOutput } from './worker';

/** Per mode, the OpenTelemetry mode its added cost is compared with. */
const PEER: Partial<Record<ModeId, ModeId>> = { '2a': '4', '2b': '4', '3': '4', '3u': '4u' };

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

export function latencyTable(outputs: WorkerOutput[], concurrencies: number[]): string {
  const lines = [
    '| client | in flight | mode | µs/call | added wall µs/call [p25, p75] | added CPU µs/call [p25, p75] | added CPU, ours / OTel |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const client of CLIENT_NAMES) {
    for (const concurrency of concurrencies) {
      const rows = MODE_IDS.map((mode) => ({ mode, r: find(outputs, mode, client, concurrency) }));
      const present = rows.filter((x) => x.r !== undefined);
      if (present.length === 0) continue;
      // Mode 1: every worker's uninstrumented blocks are a baseline; their median.
      const baselines = present.map((x) => x.r!.off?.wall.median).filter((v): v is number => v !== undefined);
      lines.push(`| ${client} | ${concurrency} | 1 ${MODE_LABELS['1']} | ${f(median(baselines))} | | | |`);
      for (const { mode, r } of present) {
        const label = `${mode} ${MODE_LABELS[mode]}`;
        if (r!.unsupported !== undefined || r!.added === undefined) {
          lines.push(`| ${client} | ${concurrency} | ${label} | n/a | n/a | n/a | n/a (${r!.unsupported ?? 'not measured'}) |`);
          continue;
        }
        const peerMode = PEER[mode];
        const peer = peerMode ? find(outputs, peerMode, client, concurrency)?.added?.cpu.median : undefined;
        const ratio = peerMode === undefined ? '' : peer === undefined ? 'n/a' : peer <= 0 ? 'OTel ≤ 0' : f(r!.added.cpu.median / peer, 2);
        lines.push(
          `| ${client} | ${concurrency} | ${label} | ${f(r!.on!.wall.median)} | ${spread(r!.added.wall)} | ${spread(r!.added.cpu)} | ${ratio} |`,
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
    '| client | calls | heap after GC, off: before → after (KiB) | growth off (KiB) | heap after GC, on: before → after (KiB) | growth on (KiB) | growth on, bytes/call |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const m of results) {
    if (!m.on || !m.off) {
      lines.push(`| ${m.client} | ${m.calls} | n/a | | n/a | | n/a (${m.unsupported ?? 'not measured'}) |`);
      continue;
    }
    const gOff = m.off.after - m.off.before;
    const gOn = m.on.after - m.on.before;
    lines.push(
      `| ${m.client} | ${m.calls} | ${kb(m.off.before)} → ${kb(m.off.after)} | ${kb(gOff)} | ${kb(m.on.before)} → ${kb(m.on.after)} | ${kb(gOn)} | ${f(gOn / m.calls, 2)} |`,
    );
  }
  return lines.join('\n');
}

/** The targets, checked per client and concurrency. */
export function checkTargets(
  outputs: WorkerOutput[],
  concurrencies: number[],
  startup: StartupResult | undefined,
  memory: MemoryResult[],
): Check[] {
  const checks: Check[] = [];
  const cpu = (mode: ModeId, c: ClientName, n: number): number | undefined => find(outputs, mode, c, n)?.added?.cpu.median;
  const each = (target: string, test: (c: ClientName, n: number) => [boolean | undefined, string]): void => {
    const parts: string[] = [];
    let met: boolean | undefined = true;
    for (const c of CLIENT_NAMES) {
      for (const n of concurrencies) {
        const [ok, detail] = test(c, n);
        if (ok === undefined) {
          parts.push(`${c}/${n}: n/a`);
          if (met === true) met = undefined;
          continue;
        }
        if (!ok) met = false;
        parts.push(`${c}/${n}: ${detail}${ok ? '' : ' MISSED'}`);
      }
    }
    checks.push({ target, met, detail: parts.join('; ') });
  };
  each('2a added CPU ≤ 3 µs/call', (c, n) => {
    const v = cpu('2a', c, n);
    return v === undefined ? [undefined, ''] : [v <= 3, f(v)];
  });
  each('2b added CPU ≤ ½ of OTel (4)', (c, n) => {
    const v = cpu('2b', c, n);
    const o = cpu('4', c, n);
    return v === undefined || o === undefined ? [undefined, ''] : [v <= o / 2, `${f(v)} vs ${f(o / 2)}`];
  });
  each('3 added CPU ≤ OTel (4)', (c, n) => {
    const v = cpu('3', c, n);
    const o = cpu('4', c, n);
    return v === undefined || o === undefined ? [undefined, ''] : [v <= o, `${f(v)} vs ${f(o)}`];
  });
  each('3u unsampled added CPU ≤ 1 µs/call', (c, n) => {
    const v = cpu('3u', c, n);
    return v === undefined ? [undefined, ''] : [v <= 1, f(v)];
  });
  if (startup) {
    const added = (v: 'jaeger-client' | 'register' | 'otel'): number => startup.cpu[v].median - startup.cpu.node.median;
    const beyond = added('register') - added('jaeger-client');
    checks.push({
      target: 'startup: -r ./register adds ≤ 10 ms CPU beyond loading jaeger-client',
      met: beyond <= 10,
      detail: `${f(beyond)} ms (register +${f(added('register'))}, jaeger-client +${f(added('jaeger-client'))})`,
    });
    checks.push({
      target: 'startup: -r ./register adds < ⅓ of the CPU OTel register adds',
      met: added('register') < added('otel') / 3,
      detail: `${f(added('register'))} ms vs ${f(added('otel') / 3)} ms (OTel +${f(added('otel'))})`,
    });
  }
  if (memory.length > 0) {
    const measured = memory.filter((m) => m.on && m.off);
    // "No growth": what the instrumented run keeps after GC is within 64 bytes per call
    // of what the uninstrumented run keeps (GC heuristics move a few hundred KiB either way).
    const perCall = measured.map((m) => ({
      client: m.client,
      extra: (m.on!.after - m.on!.before - (m.off!.after - m.off!.before)) / m.calls,
    }));
    checks.push({
      target: 'memory: no growth with the number of calls (on − off ≤ 64 bytes/call)',
      met: measured.length === 0 ? undefined : perCall.every((p) => p.extra <= 64),
      detail: perCall.map((p) => `${p.client}: ${f(p.extra, 2)} B/call`).join('; ') || 'n/a',
    });
  }
  return checks;
}

export function checksText(checks: Check[]): string {
  return checks
    .map((c) => `- ${c.met === true ? 'MET' : c.met === false ? 'MISSED' : 'N/A'}: ${c.target} — ${c.detail}`)
    .join('\n');
}
