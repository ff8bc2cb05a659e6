/** The public API of opentracing-instrumentation. */
export { installAllPatches, installPatches, uninstallAllPatches } from './patcher';
export { getCurrentSpan, setCurrentSpanFunc, spanInContext, suppressInstrumentation } from './context';
export { setResponseHook } from './options';
export { beforeRequest, expressMiddleware, koaMiddleware, serverSpanOf } from './server';
export type { BeforeRequestOptions, ConnectMiddleware, IncomingRequestLike, KoaContextLike, KoaMiddleware } from './server';
export { traced } from './traced';
export type { TracedDecorator, TracedOptions } from './traced';
export type {
  AxiosOptions,
  AxiosRequestConfigLike,
  AxiosResponseLike,
  FetchOptions,
  FetchRequestLike,
  FetchResponseLike,
  HttpClientOptions,
  HttpServerOptions,
  InstrumentationOptions,
  IoredisOptions,
  IoredisRequest,
  PatchName,
  PatchOptions,
  PgOptions,
  PgQueryConfig,
  PgQueryResult,
  ResponseHookOf,
} from './options';
export type { AmqplibOptions, AmqplibRequest, AmqplibResponse } from './hooks/amqplib';
export type { BullmqOptions, BullmqRequest } from './hooks/bullmq';
export { closeTracer, flushTracer, initTracer, initTracerFromEnv } from './tracer';
export type { JaegerConfig, JaegerOptions, JaegerTracer } from './tracer';
