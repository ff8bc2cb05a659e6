/** Where the repository is, whether this runs from bench/ (ts-node) or dist-bench/bench/ (compiled). */
import * as fs from 'fs';
import * as path from 'path';

function findRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'register.js'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`bench: no repository root above ${__dirname}`);
  }
}

export const ROOT = findRoot();

/** The command line that runs the sibling script `name` (worker, server) the way this one runs. */
export function scriptArgs(name: string): string[] {
  const ts = __filename.endsWith('.ts');
  return ts ? ['-r', 'ts-node/register', path.join(__dirname, `${name}.ts`)] : [path.join(__dirname, `${name}.js`)];
}
