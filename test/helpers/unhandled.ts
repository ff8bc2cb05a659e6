/**
 * Runs `fn` with mocha's unhandledRejection listeners set aside, lets the
 * rejections of its promises surface (a 50 ms timer, and with
 * `thenImmediate` one more turn of the event loop) once it has settled, and
 * returns the rejections nobody handled.
 */
export async function unhandledDuring(fn: () => Promise<void>, opts: { thenImmediate?: boolean } = {}): Promise<unknown[]> {
  const saved = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  const seen: unknown[] = [];
  const listener = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', listener);
  try {
    await fn();
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (opts.thenImmediate) await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.removeListener('unhandledRejection', listener);
    for (const l of saved) process.on('unhandledRejection', l);
  }
  return seen;
}
