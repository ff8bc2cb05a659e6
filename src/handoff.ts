/**
 * A value handed from a callback to the call it makes synchronously. The
 * pools of pg-pool and mysql2 ask for a connection from inside their query
 * method and make the connection's query synchronously from the connection
 * callback: the pool call travels to that query through a `Handoff` while
 * the callback runs. No async context is carried for it (cheaper than
 * binding the callback, and right whoever's context the pool runs it in).
 */
export class Handoff<T> {
  /** The value handed over, while a callback run by `run` is running. */
  current: T | undefined = undefined;

  /** Calls `fn` on `self` with `args`, `current` being `value` until it returns or throws. */
  run<R>(value: T, fn: (this: unknown, ...args: unknown[]) => R, self: unknown, args: ArrayLike<unknown>): R {
    const previous = this.current;
    this.current = value;
    try {
      return fn.apply(self, args as unknown[]);
    } finally {
      this.current = previous;
    }
  }
}
