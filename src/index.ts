/** The public API of opentracing-instrumentation. */
export { installAllPatches, installPatches, uninstallAllPatches } from './patcher';
export { getCurrentSpan, setCurrentSpanFunc, spanInContext, suppressInstrumentation } from './context';
export { setResponseHook } from './options';
export { beforeRequest, expressMiddleware, koaMiddleware, serverSpanOf } from './server';
export type { BeforeRequestOptions, ConnectMiddleware, IncomingRequestLike, KoaContextLike, KoaMiddleware } from './server';
export { traced } from './traced';
export type { TracedDecorator, TracedOptions } from './traced';
export type { AwsSdkOptions, AwsSdkRequest, AwsSdkResponse } from './hooks/aws-sdk';
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
export type { RedisOptions, RedisRequest } from './hooks/redis';
export type { AmqplibOptions, AmqplibRequest, AmqplibResponse } from './hooks/amqplib';
export type { BullmqOptions, BullmqRequest } from './hooks/bullmq';
export { closeTracer, flushTracer, initTracer, initTracerFromEnv } from './tracer';
export type { ConsoleExporterOptions, ExporterName, ExporterOption, JaegerConfig, JaegerOptions, JaegerTracer, OtlpExporterOptions } from './tracer';
export { registerW3CCodec, W3CTraceContextCodec } from './w3c';
export type { CodecRegistry, PropagationFormat, W3CCodecOptions } from './w3c';
export type { InstrumentationTracerOptions } from './env-config';
