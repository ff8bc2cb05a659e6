/**
 * Name resolution for tests that need host names without DNS: every name
 * resolves to 127.0.0.1, where the test servers listen.
 */
import type { LookupFunction } from 'net';

/** A `lookup` for http/https/net options: any name is 127.0.0.1. `onLookup` sees each name asked for. */
export function loopbackLookup(onLookup?: (hostname: string) => void): LookupFunction {
  return ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    onLookup?.(hostname);
    if (options && options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
  }) as LookupFunction;
}
