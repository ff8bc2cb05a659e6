/**
 * Versions: each hook on the oldest and newest installed version of every
 * major in its declared range (npm aliases, patched as their real package
 * with `patchModuleAs`), and a copy outside a hook's range left unpatched
 * with one diagnostic line.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import assert from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
const semverSatisfies = require('semver/functions/satisfies') as (version: string, range: string, options?: { includePrerelease?: boolean }) => boolean;
import { instrumentations } from '../src/hooks';
import { patchModuleAs } from '../src/patcher';
import { simpleSatisfies, versionAt } from '../src/versions';
import { spanInContext, suppressInstrumentation } from '../src/context';
import { isWrapped } from '../src/wrap';
import { PG, REDIS, uniqueName } from './helpers/db';
import { startHttpServer, type TestServer } from './helpers/servers';
import { parentId, spanId, tag, useTracing, waitForSpans, type JaegerSpan } from './helpers/tracing';

const ROOT = path.join(__dirname, '..');

/** The declared range of a registry entry. */
function rangeOf(module: string): string {
  const reg = instrumentations.find((r) => r.module === module);
  assert.ok(reg?.versions, `${module} declares its versions`);
  return reg.versions;
}

/** Checks the copy installed as `alias` is the version the matrix says and inside the declared range. */
function assertInstalled(alias: string, module: string, major: number): string {
  const version = versionAt(path.join(ROOT, 'node_modules', alias));
  assert.ok(version !== undefined && Number(version.split('.')[0]) === major, `${alias} is ${module}@${major}: ${version}`);
  assert.ok(semverSatisfies(version, rangeOf(module)), `${alias}@${version} in ${rangeOf(module)}`);
  return version;
}

describe('version ranges', () => {
  it('the fast range check agrees with semver wherever it decides, and defers to it elsewhere', () => {
    const ranges = ['>=8 <9', '>=6 <8', '>=1 <2', '>=4 <7', '>=3 <4', '>=1.2.3 <1.3', '>2.0.0', '<=3.1.4', '=2.0.1', '2.0.1', '^1.2', '~2.3', '1.x', '>=1 <2 || >=4', '1.2.3 - 2', '*', ''];
    const versions = ['0.9.0', '1.0.0', '1.2.3', '1.2.4', '1.3.0', '1.99.99', '2.0.0', '2.0.1', '3.1.4', '3.9.9', '4.0.0', '6.29.1', '7.0.0', '8.0.3', '8.23.1', '9.0.0', '1.0.0-beta.1', '8.0.0-rc.1'];
    let decided = 0;
    for (const range of ranges) {
      for (const version of versions) {
        const fast = simpleSatisfies(version, range);
        if (fast === undefined) continue;
        decided++;
        assert.strictEqual(fast, semverSatisfies(version, range, { includePrerelease: true }), `${version} in '${range}'`);
      }
    }
    assert.ok(decided > 100, `decided ${decided}`);
    for (const reg of instrumentations) {
      if (reg.versions !== undefined) assert.notStrictEqual(simpleSatisfies('1.0.0', reg.versions), undefined, `${reg.module}: ${reg.versions} takes the fast path`);
    }
  });

  it('a copy outside its range is left unpatched with one diagnostic line; in-range copies beside it are patched', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oti-versions-'));
    const fake = (where: string): void => {
      const pkg = path.join(dir, where, 'node_modules', 'ioredis');
      fs.mkdirSync(pkg, { recursive: true });
      fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'ioredis', version: '3.9.0' }));
      fs.writeFileSync(path.join(pkg, 'index.js'), 'module.exports = class Redis { sendCommand() {} };\n');
    };
    fake('a');
    fake('b');
    const script =
      `const { installAllPatches } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});` +
      `const { isWrapped } = require(${JSON.stringify(path.join(ROOT, 'dist', 'wrap.js'))});` +
      `installAllPatches();` +
      `const a = require(${JSON.stringify(path.join(dir, 'a', 'node_modules', 'ioredis'))});` +
      `const b = require(${JSON.stringify(path.join(dir, 'b', 'node_modules', 'ioredis'))});` +
      `const real = require('ioredis');` +
      `console.log(JSON.stringify([isWrapped(a.prototype.sendCommand), isWrapped(b.prototype.sendCommand), isWrapped(real.prototype.sendCommand)]));`;
    try {
      const out = execFileSync(process.execPath, ['-e', script], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', NODE_DEBUG: 'opentracing-instrumentation' },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      assert.deepStrictEqual(JSON.parse(out), [false, false, true]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${String((err as { stderr?: unknown }).stderr)}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the warning names the library, its version and the supported range, once, at the default log level', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oti-versions-'));
    const pkg = path.join(dir, 'node_modules', 'ioredis');
    fs.mkdirSync(pkg, { recursive: true });
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'ioredis', version: '3.9.0' }));
    fs.writeFileSync(path.join(pkg, 'index.js'), 'module.exports = class Redis { sendCommand() {} };\n');
    const script =
      `const { installAllPatches } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});` +
      `installAllPatches(); require(${JSON.stringify(pkg)}); installAllPatches();`;
    try {
      const { spawnSync } = require('child_process') as typeof import('child_process');
      // At the default log level: a patch skipped for its version is a warning.
      const run = spawnSync(process.execPath, ['-e', script], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '' },
        encoding: 'utf8',
      });
      assert.strictEqual(run.status, 0, run.stderr);
      const lines = run.stderr.split('\n').filter((l) => l.includes('ioredis@3.9.0'));
      assert.strictEqual(lines.length, 1, run.stderr);
      assert.match(lines[0], /ioredis@3\.9\.0 is outside the versions the ioredis patch supports \(>=4 <7\); left unpatched/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('version matrix: pg', () => {
  const t = useTracing(['pg']);
  const copies = [
    { label: 'pg (newest 8.x)', alias: 'pg', load: () => require('pg') as typeof import('pg') },
    { label: 'pg 8.0 (oldest 8.x)', alias: 'pg-8.0', load: () => require('pg-8.0') as typeof import('pg') },
  ];
  for (const copy of copies) {
    it(`${copy.label}: client.query gives one pg span under the caller, with the contract tags`, async () => {
      const version = assertInstalled(copy.alias, 'pg', 8);
      const pg = copy.load();
      patchModuleAs('pg', pg);
      assert.ok(isWrapped(pg.Client.prototype.query), `${copy.alias}@${version} patched`);
      const client = new pg.Client(PG);
      await suppressInstrumentation(() => client.connect());
      try {
        t.clear();
        const parent = t.tracer.startSpan('parent');
        const res = await spanInContext(parent, () => client.query('SELECT $1::int AS one', [1]));
        parent.finish();
        assert.strictEqual(res.rows[0].one, 1);
        const spans = (await waitForSpans(t, 2)).filter((s: JaegerSpan) => tag(s, 'component') === 'pg');
        assert.strictEqual(spans.length, 1);
        const [span] = spans;
        assert.strictEqual(span.operationName, 'pg:SELECT');
        assert.strictEqual(parentId(span), spanId(parent));
        assert.deepStrictEqual(
          ['span.kind', 'db.type', 'db.instance', 'db.user', 'db.statement'].map((k) => tag(span, k)),
          ['client', 'sql', PG.database, PG.user, 'SELECT $1::int AS one'],
        );
      } finally {
        await suppressInstrumentation(() => client.end());
      }
    });
  }
});

describe('version matrix: ioredis', () => {
  const t = useTracing(['ioredis']);
  const copies = [
    { alias: 'ioredis4', major: 4 },
    { alias: 'ioredis', major: 5 },
    { alias: 'ioredis6', major: 6 },
  ];
  for (const copy of copies) {
    it(`ioredis ${copy.major} (${copy.alias}): a GET gives one redis:GET span`, async () => {
      assertInstalled(copy.alias, 'ioredis', copy.major);
      const Redis = require(copy.alias) as typeof import('ioredis').default;
      patchModuleAs('ioredis', Redis);
      const redis = new Redis({ ...REDIS, lazyConnect: true });
      await suppressInstrumentation(() => redis.connect());
      try {
        t.clear();
        await redis.get(uniqueName('versions'));
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(t.spans().length, 1);
        assert.strictEqual(span.operationName, 'redis:GET');
        assert.deepStrictEqual(['span.kind', 'component', 'db.type'].map((k) => tag(span, k)), ['client', 'ioredis', 'redis']);
      } finally {
        redis.disconnect();
      }
    });
  }
});

describe('version matrix: axios and undici', () => {
  const t = useTracing(['http', 'axios', 'fetch']);
  let server: TestServer;
  before(async () => {
    server = await startHttpServer();
  });
  after(() => server.close());

  for (const copy of [
    { label: 'axios (newest 1.x)', alias: 'axios' },
    { label: 'axios 1.6.6 (oldest in the hook\'s range)', alias: 'axios-1.6.6' },
  ]) {
  it(`${copy.label}: a GET gives one axios span (no http span), with the contract tags`, async () => {
    assertInstalled(copy.alias, 'axios', 1);
    const axios = require(copy.alias) as typeof import('axios').default;
    patchModuleAs('axios', axios);
    t.clear();
    const res = await axios.get(`${server.origin}/v`);
    assert.strictEqual(res.status, 200);
    await waitForSpans(t, 1);
    await new Promise((r) => setTimeout(r, 20));
    const spans = t.spans().filter((s) => tag(s, 'span.kind') === 'client');
    assert.deepStrictEqual(spans.map((s) => tag(s, 'component')), ['axios']);
    const [span] = spans;
    assert.strictEqual(span.operationName, 'GET');
    assert.deepStrictEqual(['http.method', 'http.url', 'http.status_code'].map((k) => tag(span, k)), ['GET', `${server.origin}/v`, 200]);
    assert.strictEqual((server.received.at(-1)!.headers['uber-trace-id'] as string).split(':')[1], spanId(span));
  });
  }

  // The axios hook needs `axios.getAdapter` (exported since 1.5.0) and `Axios.prototype._request` (since 1.6.6): its range starts there.
  // axios 1.0.0 is outside it: left as it is, its request traced by the http patch underneath.
  it('axios 1.0.0 (outside the hook\'s range >=1.6.6): left unpatched, the request still traced once, as http', async () => {
    const version = versionAt(path.join(ROOT, 'node_modules', 'axios-1.0'));
    assert.strictEqual(version, '1.0.0');
    assert.ok(!semverSatisfies(version, rangeOf('axios')));
    const axios = require('axios-1.0') as typeof import('axios').default;
    patchModuleAs('axios', axios);
    assert.ok(!isWrapped((axios as unknown as { Axios: { prototype: { _request: unknown } } }).Axios.prototype._request));
    t.clear();
    const res = await axios.get(`${server.origin}/old`);
    assert.strictEqual(res.status, 200);
    await waitForSpans(t, 1);
    await new Promise((r) => setTimeout(r, 20));
    const spans = t.spans().filter((s) => tag(s, 'span.kind') === 'client');
    assert.deepStrictEqual(spans.map((s) => [tag(s, 'component'), tag(s, 'http.status_code')]), [['http', 200]]);
  });

  const undiciCopies = [
    { label: 'undici 6.0.0 (oldest 6.x)', alias: 'undici-6.0', major: 6 },
    { label: 'undici 6 (newest 6.x)', alias: 'undici6', major: 6 },
    { label: 'undici 7.0.0 (oldest 7.x)', alias: 'undici-7.0', major: 7 },
    { label: 'undici 7 (newest 7.x)', alias: 'undici', major: 7 },
  ];
  for (const copy of undiciCopies) {
    it(`${copy.label}: its fetch gives one fetch span, with the contract tags`, async () => {
      assertInstalled(copy.alias, 'undici', copy.major);
      const undici = require(copy.alias) as typeof import('undici');
      patchModuleAs('undici', undici);
      assert.ok(isWrapped(undici.fetch), `${copy.alias}.fetch patched`);
      t.clear();
      const res = await undici.fetch(`${server.origin}/u`);
      await res.text();
      assert.strictEqual(res.status, 200);
      await waitForSpans(t, 1);
      await new Promise((r) => setTimeout(r, 20));
      const spans = t.spans().filter((s) => tag(s, 'span.kind') === 'client');
      assert.deepStrictEqual(spans.map((s) => tag(s, 'component')), ['fetch']);
      const [span] = spans;
      assert.strictEqual(span.operationName, 'GET');
      assert.deepStrictEqual(['http.url', 'http.status_code'].map((k) => tag(span, k)), [`${server.origin}/u`, 200]);
      assert.strictEqual((server.received.at(-1)!.headers['uber-trace-id'] as string).split(':')[1], spanId(span));
    });
  }
});

describe('version matrix: aws-sdk (the oldest client of each Smithy base the hook declares, and the newest)', () => {
  const t = useTracing(['aws-sdk', 'http']);
  // s3rver: S3 over HTTP in process; it knows one access key id and checks no signature.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as new (options: Record<string, unknown>) => { run(): Promise<{ port: number }>; close(): Promise<void> };
  let server: InstanceType<typeof S3rver>;
  let dir: string;
  let endpoint: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oti-s3-versions-'));
    server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
    endpoint = `http://127.0.0.1:${(await server.run()).port}`;
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const copies = [
    { label: '@aws-sdk/client-s3 3.0.0 (over @aws-sdk/smithy-client)', alias: 'aws-s3-3.0' },
    { label: '@aws-sdk/client-s3 3.363.0 (over @smithy/smithy-client 1.x)', alias: 'aws-s3-3.363' },
    { label: '@aws-sdk/client-s3 newest (over @smithy/core)', alias: '@aws-sdk/client-s3' },
  ];
  for (const copy of copies) {
    it(`${copy.label}: CreateBucket gives one aws:S3.CreateBucket span under the caller, no http span`, async () => {
      const { S3Client, CreateBucketCommand, DeleteBucketCommand } = require(copy.alias) as typeof import('@aws-sdk/client-s3');
      const client = new S3Client({
        region: 'us-east-1',
        endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
      const bucket = uniqueName('versions').toLowerCase().replace(/_/g, '-');
      t.clear();
      const parent = t.tracer.startSpan('parent');
      await spanInContext(parent, () => client.send(new CreateBucketCommand({ Bucket: bucket })));
      parent.finish();
      await waitForSpans(t, 2);
      await new Promise((r) => setTimeout(r, 20));
      const spans = t.spans().filter((s) => tag(s, 'span.kind') === 'client');
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.CreateBucket']);
      assert.strictEqual(parentId(spans[0]), spanId(parent));
      assert.deepStrictEqual(['component', 'aws.s3.bucket', 'http.status_code'].map((k) => tag(spans[0], k)), ['aws-sdk', bucket, 200]);
      await suppressInstrumentation(() => client.send(new DeleteBucketCommand({ Bucket: bucket })));
      client.destroy();
    });
  }
});
