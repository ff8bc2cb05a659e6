/**
 * The `aws-sdk` patch (AWS SDK for JavaScript v3) on real protocol servers
 * started in process: s3rver (S3, path-style, a temporary directory) and
 * dynalite (DynamoDB, in memory). The contract kit covers the call forms;
 * this file covers what is specific to the SDK: tags, errors, retries,
 * aborts, paginators, presigned URLs, the HTTP layer underneath.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import assert from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3,
  S3Client,
  S3ServiceException,
  paginateListObjectsV2,
  waitUntilObjectExists,
} from '@aws-sdk/client-s3';
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDB,
  DynamoDBClient,
  PutItemCommand,
  paginateScan,
} from '@aws-sdk/client-dynamodb';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { spanInContext, suppressInstrumentation } from '../src/context';
import { installPatches, uninstallAllPatches } from '../src/patcher';
import { CANARY } from './helpers/canary';
import { describeClientContract } from './helpers/contract';
import { runAppWith } from './helpers/run-app';
import { assertLoggedAs, closedPort, uniqueName } from './helpers/db';
import { createTestTracer, logs, parentId, spanId, tag, tags, waitFor, type JaegerSpan } from './helpers/tracing';

const S3rver = require('s3rver') as new (options: Record<string, unknown>) => { run(): Promise<AddressInfo>; close(): Promise<void> };
const dynalite = require('dynalite') as (options: Record<string, unknown>) => http.Server;

/** s3rver knows one access key id, `S3RVER`, and does not check SigV4 signatures; the secret parts are the canary. */
const credentials = { accessKeyId: 'S3RVER', secretAccessKey: CANARY, sessionToken: CANARY };
const REGION = 'eu-west-3';

/**
 * An HTTP proxy in front of a server: records the headers of each request
 * and can answer the next ones itself with a 503 (a throttled S3), so that
 * the SDK retries. Its own forwarding is never traced.
 */
interface RecordingProxy {
  readonly port: number;
  readonly requests: http.IncomingHttpHeaders[];
  failNext: number;
  close(): Promise<void>;
}

function startProxy(targetPort: number): Promise<RecordingProxy> {
  const server = http.createServer((req, res) => {
    proxy.requests.push(req.headers);
    if (proxy.failNext > 0) {
      proxy.failNext--;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      return;
    }
    suppressInstrumentation(() => {
      const upstream = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
  });
  const proxy = {
    port: 0,
    requests: [] as http.IncomingHttpHeaders[],
    failNext: 0,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      proxy.port = (server.address() as AddressInfo).port;
      resolve(proxy);
    }),
  );
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aws-sdk-test-'));
const bucket = uniqueName('bucket').toLowerCase().replace(/_/g, '-');
const table = uniqueName('table');
let s3server: InstanceType<typeof S3rver>;
let s3port: number;
let ddbServer: http.Server;
let s3: S3Client;
let ddb: DynamoDBClient;
/** The aggregated clients (every command as a method: `s3a.putObject(...)`). */
let s3a: S3;
let ddba: DynamoDB;
let proxy: RecordingProxy;
/** S3 through the proxy (no retry delay to speak of). */
let s3p: S3Client;

function s3Client(port: number, extra: Record<string, unknown> = {}): S3Client {
  return new S3Client({ region: REGION, endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, credentials, ...extra });
}

before(async function () {
  this.timeout(20000);
  s3server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir });
  const { port } = await s3server.run();
  s3port = port;
  ddbServer = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => ddbServer.listen(0, '127.0.0.1', () => resolve()));
  proxy = await startProxy(port);
  s3 = s3Client(port);
  s3p = s3Client(proxy.port);
  // Asynchronous region provider, as an application loading it from its own config would give.
  const ddbConfig = { region: async () => REGION, endpoint: `http://127.0.0.1:${(ddbServer.address() as AddressInfo).port}`, credentials };
  ddb = new DynamoDBClient(ddbConfig);
  ddba = new DynamoDB(ddbConfig);
  s3a = new S3({ region: REGION, endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, credentials });
  await suppressInstrumentation(async () => {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await ddb.send(
      new CreateTableCommand({
        TableName: table,
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  });
});

after(async () => {
  await suppressInstrumentation(async () => {
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    for (const o of listed.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    await ddb.send(new DeleteTableCommand({ TableName: table }));
  });
  s3.destroy();
  s3p.destroy();
  s3a.destroy();
  ddb.destroy();
  ddba.destroy();
  await proxy.close();
  await s3server.close();
  await new Promise((resolve) => ddbServer.close(resolve));
  fs.rmSync(dir, { recursive: true, force: true });
});

const put = (key: string): PutObjectCommand => new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'hello' });
const item = (id: string): PutItemCommand => new PutItemCommand({ TableName: table, Item: { id: { S: id } } });

describe('aws-sdk', () => {
  describeClientContract({
    patch: 'aws-sdk',
    callForms: [
      { name: 'client.send(command)', operationName: 'aws:S3.PutObject', run: (observe) => s3.send(put('a')).then(observe) },
      {
        name: 'client.send(command, callback)',
        operationName: 'aws:S3.PutObject',
        run: (observe) => new Promise((resolve, reject) => s3.send(put('b'), (err, out) => (observe(), err ? reject(err) : resolve(out)))),
      },
      {
        name: 'client.send(command, options, callback)',
        operationName: 'aws:S3.PutObject',
        run: (observe) => new Promise((resolve, reject) => s3.send(put('c'), {}, (err, out) => (observe(), err ? reject(err) : resolve(out)))),
      },
      { name: 's3.putObject(input)', operationName: 'aws:S3.PutObject', run: (observe) => s3a.putObject({ Bucket: bucket, Key: 'd', Body: 'x' }).then(observe) },
      {
        name: 's3.headObject(input, callback)',
        operationName: 'aws:S3.HeadObject',
        run: (observe) => new Promise((resolve, reject) => s3a.headObject({ Bucket: bucket, Key: 'd' }, (err, out) => (observe(), err ? reject(err) : resolve(out)))),
      },
      {
        name: 'client.send(GetObject) of a missing key',
        operationName: 'aws:S3.GetObject',
        fails: true,
        run: (observe) => s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'missing' })).finally(observe),
      },
      { name: 'dynamodb.send(PutItem)', operationName: 'aws:DynamoDB.PutItem', run: (observe) => ddb.send(item('1')).then(observe) },
      { name: 'dynamodb.getItem(input)', operationName: 'aws:DynamoDB.GetItem', run: (observe) => ddba.getItem({ TableName: table, Key: { id: { S: '1' } } }).then(observe) },
    ],
    wrapped: () => [[Object.getPrototypeOf(S3Client.prototype) as object, 'send']],
    resolvedPath: {
      module: '@aws-sdk/client-s3',
      probe: '(m) => [[Object.getPrototypeOf(m.S3Client.prototype), "send"]]',
    },
  });

  describe('specific to the SDK', () => {
    const t = createTestTracer();
    before(() => installPatches(['aws-sdk', 'http'], { tracer: t.tracer }));
    beforeEach(() => {
      t.clear();
      proxy.requests.length = 0;
      proxy.failNext = 0;
      installPatches(['aws-sdk', 'http'], { tracer: t.tracer });
    });
    after(() => {
      uninstallAllPatches();
      t.close();
    });

    async function underParent<T>(fn: () => Promise<T>): Promise<{ parent: JaegerSpan; result: T; spans: JaegerSpan[] }> {
      const parent = t.tracer.startSpan('parent') as unknown as JaegerSpan;
      let result: T;
      try {
        result = await spanInContext(parent as never, fn);
      } finally {
        parent.finish();
      }
      // Late spans (an http span underneath would finish with its response) would show up by then.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const spans = t.spans().filter((s) => s !== parent);
      return { parent, result, spans };
    }

    it('S3 PutObject: one span (no http span underneath) with the contract tags', async () => {
      const { parent, spans } = await underParent(() => s3.send(put('tags')));
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.PutObject']);
      const span = spans[0];
      assert.strictEqual(parentId(span), spanId(parent as never));
      const all = tags(span);
      // s3rver sends no x-amz-request-id (dynalite does: tested below).
      assert.deepStrictEqual(
        all,
        {
          'span.kind': 'client',
          component: 'aws-sdk',
          'aws.service': 'S3',
          'aws.operation': 'PutObject',
          'aws.region': REGION,
          'aws.s3.bucket': bucket,
          'http.status_code': 200,
          'peer.ipv4': '127.0.0.1',
          'peer.port': s3port,
        },
      );
    });

    it('DynamoDB PutItem: table name, region from an async provider', async () => {
      const { spans } = await underParent(() => ddb.send(item('tags')));
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:DynamoDB.PutItem']);
      const span = spans[0];
      assert.strictEqual(tag(span, 'aws.dynamodb.table_name'), table);
      assert.strictEqual(tag(span, 'aws.region'), REGION);
      assert.strictEqual(tag(span, 'aws.operation'), 'PutItem');
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(typeof tag(span, 'aws.request_id'), 'string');
    });

    it('the callback and the continuation run traced: a call made from them gets its own span', async () => {
      const { parent, spans } = await underParent(
        () =>
          new Promise<void>((resolve, reject) =>
            s3.send(put('cb'), (err) => (err ? reject(err) : ddb.send(item('from-callback')).then(() => resolve(), reject))),
          ),
      );
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.PutObject', 'aws:DynamoDB.PutItem']);
      for (const s of spans) assert.strictEqual(parentId(s), spanId(parent as never));
      t.clear();
      const second = await underParent(() => s3.send(put('then')).then(() => ddb.send(item('from-then'))));
      assert.deepStrictEqual(second.spans.map((s) => s.operationName), ['aws:S3.PutObject', 'aws:DynamoDB.PutItem']);
    });

    it('no trace header reaches the AWS endpoint by default', async () => {
      const { spans } = await underParent(() => s3p.send(put('no-headers')));
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.PutObject'], 'no http span');
      assert.strictEqual(proxy.requests.length, 1);
      assert.deepStrictEqual(Object.keys(proxy.requests[0]).filter((h) => /uber|trace|baggage|uberctx/i.test(h)), []);
    });

    it('over fetch (FetchHttpHandler) with the fetch patch installed: one span, no header', async () => {
      const { FetchHttpHandler } = require('@smithy/fetch-http-handler') as { FetchHttpHandler: new () => object };
      const overFetch = s3Client(proxy.port, { requestHandler: new FetchHttpHandler() });
      installPatches(['aws-sdk', 'http', 'fetch'], { tracer: t.tracer });
      try {
        const { spans } = await underParent(() => overFetch.send(put('fetch')));
        assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.PutObject']);
        assert.strictEqual(proxy.requests.length, 1);
        assert.deepStrictEqual(Object.keys(proxy.requests[0]).filter((h) => /uber|trace|baggage/i.test(h)), []);
      } finally {
        overFetch.destroy();
      }
    });

    it('propagateTo naming the endpoint: the aws span\'s context is sent (still no http span); a list without it: nothing', async () => {
      installPatches(['aws-sdk', 'http'], { tracer: t.tracer, propagateTo: ['127.0.0.1'] });
      const { spans } = await underParent(() => s3p.send(put('headers')));
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.PutObject']);
      const sent = proxy.requests[0]['uber-trace-id'];
      assert.ok(typeof sent === 'string' && sent.split(':')[1] === spanId(spans[0] as never), `uber-trace-id ${String(sent)}`);
      t.clear();
      proxy.requests.length = 0;
      installPatches(['aws-sdk', 'http'], { tracer: t.tracer, propagateTo: ['api.internal'] });
      await underParent(() => s3p.send(put('headers')));
      assert.strictEqual(proxy.requests[0]['uber-trace-id'], undefined);
    });

    it('a 503 then a success: one span covering both attempts, aws.attempts=2', async () => {
      proxy.failNext = 1;
      const { spans } = await underParent(() => s3p.send(put('retried')));
      assert.strictEqual(proxy.requests.length, 2, 'the SDK retried');
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.PutObject']);
      assert.strictEqual(tag(spans[0], 'aws.attempts'), 2);
      assert.strictEqual(tag(spans[0], 'http.status_code'), 200);
      assert.strictEqual(tag(spans[0], 'error'), undefined);
    });

    it('NoSuchKey: the SDK\'s own error reaches the app; error.kind is its name, the status tagged', async () => {
      let caught: unknown;
      const { spans } = await underParent(() => s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'missing' })).catch((err: unknown) => (caught = err)));
      assert.ok(caught instanceof S3ServiceException && caught.name === 'NoSuchKey', String(caught));
      const span = spans[0];
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(tag(span, 'http.status_code'), 404);
      const log = logs(span).find((l) => l.event === 'error')!;
      assert.strictEqual(log['error.kind'], 'NoSuchKey');
      assertLoggedAs(log['error.object'], caught);
    });

    it('ConditionalCheckFailedException on DynamoDB', async () => {
      await suppressInstrumentation(() => ddb.send(item('exists')));
      let caught: unknown;
      const { spans } = await underParent(() =>
        ddb.send(new PutItemCommand({ TableName: table, Item: { id: { S: 'exists' } }, ConditionExpression: 'attribute_not_exists(id)' })).catch((err: unknown) => (caught = err)),
      );
      assert.ok(caught instanceof ConditionalCheckFailedException);
      assert.strictEqual(tag(spans[0], 'http.status_code'), 400);
      assert.strictEqual(logs(spans[0]).find((l) => l.event === 'error')!['error.kind'], 'ConditionalCheckFailedException');
    });

    it('abortSignal: the abort reaches the app, the span is failed and finished once', async () => {
      const controller = new AbortController();
      let caught: unknown;
      const { spans } = await underParent(() => {
        const p = s3.send(put('aborted'), { abortSignal: controller.signal }).catch((err: unknown) => (caught = err));
        controller.abort();
        return p;
      });
      assert.strictEqual((caught as Error | undefined)?.name, 'AbortError');
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.PutObject']);
      assert.strictEqual(tag(spans[0], 'error'), true);
    });

    it('paginateListObjectsV2: one span per page request, a child of the caller', async () => {
      // One page: s3rver cannot make continuation tokens on Node >= 17 (it
      // ciphers them with DES, which OpenSSL 3 has only in its legacy provider);
      // the several-page case is DynamoDB's paginateScan, below.
      const { parent, spans } = await underParent(async () => {
        for await (const page of paginateListObjectsV2({ client: s3, pageSize: 1000 }, { Bucket: bucket })) assert.ok(page.KeyCount !== undefined);
      });
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.ListObjectsV2']);
      assert.strictEqual(parentId(spans[0]), spanId(parent as never));
    });

    it('paginateScan over several pages: one span per page request, each a child of the caller', async () => {
      await suppressInstrumentation(async () => {
        for (const id of ['s1', 's2', 's3']) await ddb.send(item(id));
      });
      let pages = 0;
      const { parent, spans } = await underParent(async () => {
        for await (const page of paginateScan({ client: ddb, pageSize: 1 }, { TableName: table })) if (page.Count !== undefined) pages++;
      });
      assert.ok(pages >= 3, `${pages} pages`);
      assert.strictEqual(spans.length, pages);
      for (const s of spans) {
        assert.strictEqual(s.operationName, 'aws:DynamoDB.Scan');
        assert.strictEqual(parentId(s), spanId(parent as never));
      }
    });

    it('waitUntilObjectExists: one span per poll (a HeadObject send)', async () => {
      await suppressInstrumentation(() => s3.send(put('waited')));
      const { spans } = await underParent(() => waitUntilObjectExists({ client: s3, maxWaitTime: 10 }, { Bucket: bucket, Key: 'waited' }));
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.HeadObject']);
    });

    it('a refused connection: one span over the SDK\'s retries, error.kind is the network error\'s code', async () => {
      const dead = s3Client(await closedPort(), { maxAttempts: 2 });
      let caught: unknown;
      try {
        const { spans } = await underParent(() => dead.send(put('refused')).catch((err: unknown) => (caught = err)));
        assert.strictEqual((caught as { code?: string }).code, 'ECONNREFUSED');
        assert.deepStrictEqual(spans.map((s) => s.operationName), ['aws:S3.PutObject']);
        assert.strictEqual(logs(spans[0]).find((l) => l.event === 'error')!['error.kind'], 'ECONNREFUSED');
        assertLoggedAs(logs(spans[0]).find((l) => l.event === 'error')!['error.object'], caught);
      } finally {
        dead.destroy();
      }
    });

    it('GetObject: the span ends when send settles; the Body stream is left unread for the app', async () => {
      await suppressInstrumentation(() => s3.send(put('body')));
      const { result, spans } = await underParent(() => s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'body' })));
      assert.strictEqual(spans.length, 1, 'finished before the body is read');
      const body = result.Body as unknown as NodeJS.ReadableStream & { readableFlowing: boolean | null };
      assert.strictEqual(body.readableFlowing, null, 'nobody read the body');
      assert.strictEqual(await result.Body!.transformToString(), 'hello');
    });

    it('an ES module app: `import { S3Client } from \'@aws-sdk/client-s3\'` under `node --import register` is traced', async () => {
      const app = path.join(__dirname, 'fixtures', 'esm-app', 'aws-sdk.mjs');
      const run = await runAppWith(['--import', path.join(__dirname, '..', 'register.js'), app], path.dirname(app), {
        S3_ENDPOINT: `http://127.0.0.1:${s3port}`,
        BUCKET: uniqueName('esm').toLowerCase().replace(/_/g, '-'),
        OPENTRACING_INSTRUMENTATION_DISABLE: 'http-server',
      });
      assert.strictEqual(run.code, 0, run.stderr);
      assert.deepStrictEqual(JSON.parse(run.stdout), { wrappedAtImport: true, spans: ['aws:S3.CreateBucket', 'aws:S3.DeleteBucket', 'parent'] });
    });

    it('presigned URL: no span while signing; fetching it with http installed leaks no credential', async () => {
      const url = await underParent(() => getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: 'body' }), { expiresIn: 60 }));
      assert.ok(url.result.includes('X-Amz-Security-Token'), 'the session token is in the URL');
      assert.deepStrictEqual(url.spans, []);
      await new Promise<void>((resolve, reject) =>
        http.get(url.result, (res) => {
          res.resume();
          res.on('end', resolve);
        }).on('error', reject),
      );
      await waitFor(() => t.spans().some((s) => s.operationName === 'GET'));
      const get = t.spans().find((s) => s.operationName === 'GET')!;
      assert.ok(!String(tag(get, 'http.url')).includes(CANARY), 'the http span redacts the presigned query');
    });
  });
});
