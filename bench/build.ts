/**
 * Compiles the benchmark to plain JavaScript in `dist-bench/bench/`
 * (transpile only: type checking is `npm run lint`). The measured processes
 * run that, not ts-node: ts-node loads Node's `repl`, which loads `domain`,
 * which slows down every `EventEmitter.emit` of the process it runs in.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

export const BENCH_SRC = __dirname;
export const BENCH_OUT = path.join(__dirname, '..', 'dist-bench', 'bench');

/** Transpiles every bench/*.ts; returns the output folder. */
export function buildBench(): string {
  fs.mkdirSync(BENCH_OUT, { recursive: true });
  for (const file of fs.readdirSync(BENCH_SRC)) {
    if (!file.endsWith('.ts') || file.endsWith('.d.ts') || file === 'build.ts') continue;
    const source = fs.readFileSync(path.join(BENCH_SRC, file), 'utf8');
    const out = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2022,
        esModuleInterop: true,
        strict: true,
      },
    });
    fs.writeFileSync(path.join(BENCH_OUT, file.replace(/\.ts$/, '.js')), out.outputText);
  }
  return BENCH_OUT;
}

if (require.main === module) buildBench();
