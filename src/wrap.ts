/**
 * Wrapping and unwrapping methods (on top of shimmer), so that every patch
 * keeps the wrapped function's `name` and `length`, never wraps twice, and
 * restores the very same original on unwrap.
 */
import shimmer from 'shimmer';
import { logOnce } from './logger';

// shimmer reports problems with console.error by default; route them to our debug log.
shimmer({ logger: (msg: string) => logOnce(`shimmer:${msg}`, `shimmer: ${msg}`) });

const ORIGINAL = Symbol.for('opentracing-instrumentation.original');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFunction = (...args: any[]) => any;

interface Marked {
  [ORIGINAL]?: AnyFunction;
}

/** True when `fn` is one of our wrappers. */
export function isWrapped(fn: unknown): boolean {
  return typeof fn === 'function' && (fn as Marked)[ORIGINAL] !== undefined;
}

/** The function our wrapper stands for, or `fn` itself. */
export function originalOf<F>(fn: F): F {
  return (typeof fn === 'function' && ((fn as unknown as Marked)[ORIGINAL] as F | undefined)) || fn;
}

/**
 * Replaces `target[name]` by `makeWrapper(original)`. Does nothing (and says
 * so in the debug log) when it is missing or already ours.
 */
export function wrapMethod<T extends object, K extends keyof T>(
  target: T,
  name: K,
  makeWrapper: (original: T[K] & AnyFunction) => AnyFunction,
): boolean {
  const original = target[name] as unknown;
  if (typeof original !== 'function') {
    logOnce(`wrap-missing:${String(name)}`, `cannot wrap ${String(name)}: not a function here`);
    return false;
  }
  if (isWrapped(original)) return false;
  const wrapper = makeWrapper(original as T[K] & AnyFunction);
  Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: original.length, configurable: true });
  Object.defineProperty(wrapper, ORIGINAL, { value: original, configurable: true });
  shimmer.wrap(target as Record<string, AnyFunction>, name as string, () => wrapper);
  return true;
}

/** Puts the original back when `target[name]` is our wrapper. */
export function unwrapMethod<T extends object, K extends keyof T>(target: T, name: K): void {
  const current = target[name] as unknown;
  if (!isWrapped(current)) return;
  shimmer.unwrap(target as Record<string, AnyFunction>, name as string);
  // shimmer restores through its own marker; make sure the exact original is back.
  if (target[name] !== (current as Marked)[ORIGINAL]) {
    (target as Record<string, unknown>)[name as string] = (current as Marked)[ORIGINAL];
  }
}
