/**
 * Manual instrumentation (the seed library's `traced_function`): a span per
 * call of a function, child of the current span and current while the
 * function runs, as a wrapper (`traced(fn)`) or a method decorator
 * (`@traced()`), for both TypeScript decorator flavours: legacy
 * `experimentalDecorators` (target, key, descriptor) and TC39 standard
 * decorators (value, context), told apart at run time.
 */
import { types } from 'util';
import type { Span } from 'opentracing';
import { getCurrentSpan, isSuppressed, spanInContext } from './context';
import { logOnce, safeCall } from './logger';
import { getTracer } from './options';
import { asSpan, finishSpan } from './span';

/** Options of `traced`. */
export interface TracedOptions<Args extends unknown[] = unknown[]> {
  /** The operation name. Default: the function's (method's) name, else `anonymous`. */
  name?: string;
  /**
   * Called with the new span and the call's arguments before the function
   * runs, to set tags or baggage. One that throws, or returns a promise that
   * rejects, is contained and logged.
   * Default: none.
   */
  onStart?: ((span: Span, ...args: Args) => void) | null;
  /** When true, a call made with no current span gets no span. Default: false (it starts a new trace). */
  requireActiveTrace?: boolean;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (this: any, ...args: any[]) => any;

/** The decorator `traced(options)` returns; it fits both decorator flavours. */
export interface TracedDecorator {
  /** TC39 standard decorator of a method. */
  <F extends AnyFunction>(value: F, context: ClassMethodDecoratorContext): F;
  /** Legacy (`experimentalDecorators`) method decorator. */
  <D extends PropertyDescriptor>(target: object, key: string | symbol, descriptor: D): D;
}

/**
 * Runs `fn` with a span of its own; a returned native promise finishes the
 * span when it settles (the caller then gets a promise that settles the same
 * way, one step later).
 */
function callTraced(fn: AnyFunction, self: unknown, args: IArguments, name: string, options: TracedOptions): unknown {
  if (isSuppressed()) return fn.apply(self, args as unknown as unknown[]);
  const parent = getCurrentSpan();
  if (parent === undefined && options.requireActiveTrace === true) return fn.apply(self, args as unknown as unknown[]);
  let span: Span | undefined;
  try {
    span = asSpan(getTracer().startSpan(name, { childOf: parent }), 'traced');
  } catch (err) {
    logOnce('startSpan:traced', `tracer.startSpan threw for traced function ${name}; it runs untraced`, err);
    return fn.apply(self, args as unknown as unknown[]);
  }
  if (span === undefined) return fn.apply(self, args as unknown as unknown[]);
  if (typeof options.onStart === 'function') {
    safeCall(`traced onStart (${name})`, options.onStart, span, ...(Array.prototype.slice.call(args) as unknown[]));
  }
  return spanInContext(span, () => {
    let result: unknown;
    try {
      result = fn.apply(self, args as unknown as unknown[]);
    } catch (err) {
      finishSpan(span, err);
      throw err;
    }
    // Only native promises: calling `then` on other thenables may start work
    // (lazy query builders run on `then`), so their span ends when they are returned.
    if (types.isPromise(result)) {
      return result.then(
        (value) => {
          finishSpan(span);
          return value;
        },
        (err: unknown) => {
          finishSpan(span, err);
          throw err;
        },
      );
    }
    finishSpan(span);
    return result;
  });
}

function wrapFunction<F extends AnyFunction>(fn: F, name: string, options: TracedOptions): F {
  const wrapper = function (this: unknown): unknown {
    if (new.target !== undefined) return Reflect.construct(fn, arguments, new.target) as unknown;
    return callTraced(fn, this, arguments, name, options);
  };
  Object.defineProperty(wrapper, 'name', { value: fn.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: fn.length, configurable: true });
  return wrapper as unknown as F;
}

function checkOptions(options: unknown): TracedOptions {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw new TypeError('traced: options must be an object');
  const o = options as TracedOptions;
  if (o.name !== undefined && typeof o.name !== 'string') throw new TypeError('traced: options.name must be a string');
  if (o.onStart !== undefined && o.onStart !== null && typeof o.onStart !== 'function') {
    throw new TypeError('traced: options.onStart must be a function');
  }
  return o;
}

function keyName(key: string | symbol): string {
  return typeof key === 'symbol' ? (key.description ?? 'anonymous') : key;
}

function isDecoratorContext(value: unknown): value is ClassMethodDecoratorContext {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { kind?: unknown }).kind === 'string' &&
    typeof (value as { addInitializer?: unknown }).addInitializer === 'function'
  );
}

function isLegacyCall(args: IArguments | unknown[]): boolean {
  const key = args[1];
  const descriptor = args[2];
  return args.length === 3 && (typeof key === 'string' || typeof key === 'symbol') && descriptor !== null && typeof descriptor === 'object';
}

function decorate(options: TracedOptions, args: IArguments | unknown[]): unknown {
  if (isLegacyCall(args)) {
    const key = args[1] as string | symbol;
    const descriptor = args[2] as PropertyDescriptor;
    if (typeof descriptor.value !== 'function') throw new TypeError('@traced decorates methods only');
    const method = descriptor.value as AnyFunction;
    return { ...descriptor, value: wrapFunction(method, options.name ?? keyName(key), options) };
  }
  const [value, context] = args as [unknown, unknown];
  if (typeof value === 'function' && isDecoratorContext(context)) {
    if (context.kind !== 'method') throw new TypeError('@traced decorates methods only');
    return wrapFunction(value as AnyFunction, options.name ?? keyName(context.name), options);
  }
  throw new TypeError('@traced: not applied to a method');
}

/**
 * `traced(fn, options?)` returns `fn` wrapped: each call gets a span (child
 * of the current span, current while `fn` runs, so nested calls become its
 * children), finished when `fn` returns or, for a returned promise, when it
 * settles; a throw or rejection tags the error and reaches the caller as the
 * same object. `this`, `name` and `length` are kept.
 *
 * `@traced`, `@traced()` and `@traced(options)` decorate a method the same way.
 */
export function traced<F extends AnyFunction>(fn: F, options?: TracedOptions<Parameters<F>>): F;
export function traced<F extends AnyFunction>(value: F, context: ClassMethodDecoratorContext): F;
export function traced<D extends PropertyDescriptor>(target: object, key: string | symbol, descriptor: D): D;
export function traced(options?: TracedOptions): TracedDecorator;
export function traced(first?: unknown, second?: unknown): unknown {
  if (isLegacyCall(arguments)) return decorate({}, arguments);
  if (typeof first === 'function') {
    if (isDecoratorContext(second)) return decorate({}, arguments);
    const options = checkOptions(second);
    const fn = first as AnyFunction;
    return wrapFunction(fn, options.name ?? (fn.name || 'anonymous'), options);
  }
  const options = checkOptions(first);
  return function tracedDecorator(): unknown {
    return decorate(options, arguments);
  } as TracedDecorator;
}
