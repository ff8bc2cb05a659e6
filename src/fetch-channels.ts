/**
 * The fetch patch's subscriptions to undici's `diagnostics_channel` events,
 * which outlive an uninstall while spans are in flight: undici publishes a
 * request's response and end on the channels, so every span already started
 * finishes once only if they stay subscribed until the last one ends.
 */
import type * as diagnosticsChannel from 'diagnostics_channel';
import { logOnce } from './logger';

export type DiagnosticsChannel = Pick<typeof diagnosticsChannel, 'subscribe' | 'unsubscribe'>;
/** A channel, its subscriber, and what a failure of the subscriber is logged as. */
type Handlers = ReadonlyArray<readonly [string, (message: unknown) => void, string]>;

export class LingeringSubscriptions {
  /** Whether the patch is installed; while not, the subscriptions only serve the spans in flight. */
  installed = false;
  private subscribed = false;
  /** Spans whose response or end is followed through the channels and has not come yet. */
  private followed = 0;
  /** The diagnostics_channel module subscribed to. */
  private channels: DiagnosticsChannel | undefined;

  private readonly handlers: ReadonlyArray<readonly [string, (message: unknown) => void]>;

  constructor(handlers: Handlers) {
    // A subscriber that throws would surface as an uncaught exception in the publisher: never.
    this.handlers = handlers.map(([channel, handler, failure]) => {
      const contained = (message: unknown): void => {
        try {
          handler(message);
        } catch (err) {
          logOnce(`subscriber:${channel}`, failure, err);
        }
      };
      return [channel, contained] as const;
    });
  }

  install(dc: DiagnosticsChannel): void {
    this.installed = true;
    // There is one diagnostics_channel per process; subscribing twice would trace every request twice.
    if (this.subscribed) return;
    this.subscribed = true;
    this.channels = dc;
    for (const [channel, handler] of this.handlers) dc.subscribe(channel, handler);
  }

  uninstall(dc: DiagnosticsChannel): void {
    this.installed = false;
    if (this.followed === 0) this.unsubscribe();
    else this.channels ??= dc;
  }

  /** A span is now followed through the channels. */
  follow(): void {
    this.followed++;
  }

  /**
   * A followed span has ended. The last one to end after an uninstall takes
   * the subscriptions away, on the next turn: not from inside a publish.
   */
  unfollow(): void {
    if (this.followed > 0) this.followed--;
    if (this.followed === 0 && !this.installed && this.subscribed) {
      setImmediate(() => {
        if (this.followed === 0 && !this.installed) this.unsubscribe();
      });
    }
  }

  private unsubscribe(): void {
    // Also after a partial patch: unsubscribing what is not subscribed is a no-op.
    if (this.channels !== undefined) for (const [channel, handler] of this.handlers) this.channels.unsubscribe(channel, handler);
    this.subscribed = false;
  }
}
