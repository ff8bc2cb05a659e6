/**
 * A byte buffer written from the front that doubles when full: the base of
 * the span encoders (Thrift for the UDP reporter, protobuf for OTLP), which
 * reuse one between batches. Only `buf[0, pos)` is ever read.
 */
export class GrowableBuffer {
  buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Room for `n` more bytes at `pos`. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}
