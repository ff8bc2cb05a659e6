/** The public API of opentracing-instrumentation. */
export { installAllPatches, installPatches, uninstallAllPatches } from './patcher';
export { getCurrentSpan, setCurrentSpanFunc, spanInContext, suppressInstrumentation } from './context';
export { setResponseHook } from './options';
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
  PatchName,
  PatchOptions,
  PgOptions,
  ResponseHookOf,
} from './options';
export { closeTracer, flushTracer, initTracer, initTracerFromEnv } from './tracer';
export type { JaegerConfig, JaegerOptions, JaegerTracer } from './tracer';
