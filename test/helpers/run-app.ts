/**
 * Runs a fixture app as a child process under `node -r ./register` (or plain
 * `node` with `register` false), with a
 * clean environment plus `env`; optionally sends it a signal once it has
 * printed its first line. Kills it after 15 s (the result then shows it).
 */
import { spawn } from 'child_process';
import * as path from 'path';

const root = path.join(__dirname, '..', '..');
export const plainApp = path.join(__dirname, '..', 'fixtures', 'plain-app', 'app.js');

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export function runApp(
  env: Record<string, string>,
  signal?: NodeJS.Signals,
  app: string = plainApp,
  register = true,
): Promise<Run> {
  const args = register ? ['-r', path.join(root, 'register.js'), app] : [app];
  return runAppWith(args, path.dirname(app), env, signal);
}

/** Runs `node ...args` in `cwd` (see runApp). */
export function runAppWith(args: string[], cwd: string, env: Record<string, string>, signal?: NodeJS.Signals): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (signal && stdout.includes('\n')) child.kill(signal);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      clearTimeout(killer);
      resolve({ code, signal: sig, stdout, stderr, ms: Date.now() - started });
    });
  });
}
