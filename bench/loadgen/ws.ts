/**
 * The minimal RFC 6455 pieces a listening load client needs: a push parser
 * for server frames (7-, 16- and 64-bit lengths, masked or not, split
 * anywhere) that streams data-frame payload slices without copying or
 * decoding them, and an encoder for the masked frames a client sends (pong,
 * close). Nothing here does I/O.
 *
 * @module
 */

/** Opcodes used here. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** What the parser reports. */
export interface WsFrameHandlers {
  /** Unmasked payload bytes of text, binary and continuation frames, as they arrive. */
  data(buf: Uint8Array, start: number, end: number): void;
  /** A complete ping, with its payload (to echo in the pong). */
  ping(payload: Uint8Array): void;
  /** A close frame; 1005 when it carries no status code. */
  close(code: number): void;
  /** The final frame of a data message ended. */
  message?(): void;
}

const MAX_CONTROL_PAYLOAD = 125;

/** Parses a stream of server-to-client frames fed in arbitrary slices. */
export class WsFrameParser {
  readonly #handlers: WsFrameHandlers;
  readonly #header = new Uint8Array(14);
  readonly #mask = new Uint8Array(4);
  #headerLength = 0;
  #needed = 2;
  #inPayload = false;
  #opcode = 0;
  #fin = false;
  #masked = false;
  #remaining = 0;
  #maskOffset = 0;
  #control = new Uint8Array(0);
  #controlLength = 0;

  constructor(handlers: WsFrameHandlers) {
    this.#handlers = handlers;
  }

  /** Feeds `buf[start, end)`; masked payloads are unmasked in place. */
  push(buf: Uint8Array, start: number, end: number): void {
    let i = start;
    while (i < end) {
      i = this.#inPayload ? this.#readPayload(buf, i, end) : this.#readHeader(buf, i, end);
    }
  }

  #readHeader(buf: Uint8Array, start: number, end: number): number {
    let i = start;
    while (i < end && this.#headerLength < this.#needed) {
      this.#header[this.#headerLength++] = buf[i++];
      if (this.#headerLength === 2) this.#needed = headerSize(this.#header);
    }
    if (this.#headerLength === this.#needed) this.#beginPayload();
    return i;
  }

  #beginPayload(): void {
    const h = this.#header;
    this.#fin = (h[0] & 0x80) !== 0;
    this.#opcode = h[0] & 0x0f;
    this.#masked = (h[1] & 0x80) !== 0;
    let length = h[1] & 0x7f;
    let offset = 2;
    if (length === 126) [length, offset] = [(h[2] << 8) | h[3], 4];
    else if (length === 127) [length, offset] = [readUint64(h, 2), 10];
    if (this.#masked) this.#mask.set(h.subarray(offset, offset + 4));
    this.#remaining = length;
    this.#maskOffset = 0;
    this.#headerLength = 0;
    this.#needed = 2;
    this.#inPayload = true;
    if (this.#opcode >= Opcode.Close) {
      this.#control = new Uint8Array(Math.min(length, MAX_CONTROL_PAYLOAD));
      this.#controlLength = 0;
    }
    if (length === 0) this.#endFrame();
  }

  #readPayload(buf: Uint8Array, i: number, end: number): number {
    const n = Math.min(this.#remaining, end - i);
    if (this.#masked) {
      for (let k = 0; k < n; k++) buf[i + k] ^= this.#mask[(this.#maskOffset + k) & 3];
      this.#maskOffset += n;
    }
    if (this.#opcode < Opcode.Close) this.#handlers.data(buf, i, i + n);
    else this.#keepControl(buf, i, i + n);
    this.#remaining -= n;
    if (this.#remaining === 0) this.#endFrame();
    return i + n;
  }

  #keepControl(buf: Uint8Array, start: number, end: number): void {
    const room = this.#control.length - this.#controlLength;
    const part = buf.subarray(start, Math.min(end, start + room));
    this.#control.set(part, this.#controlLength);
    this.#controlLength += part.length;
  }

  #endFrame(): void {
    this.#inPayload = false;
    const payload = this.#control.subarray(0, this.#controlLength);
    if (this.#opcode === Opcode.Ping) this.#handlers.ping(payload);
    else if (this.#opcode === Opcode.Close) {
      this.#handlers.close(payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005);
    } else if (this.#opcode < Opcode.Close && this.#fin) this.#handlers.message?.();
  }
}

/** Bytes of header the first two bytes announce (2–14). */
function headerSize(h: Uint8Array): number {
  const length = h[1] & 0x7f;
  const extended = length === 126 ? 2 : length === 127 ? 8 : 0;
  return 2 + extended + ((h[1] & 0x80) !== 0 ? 4 : 0);
}

function readUint64(h: Uint8Array, at: number): number {
  const view = new DataView(h.buffer, h.byteOffset + at, 8);
  return view.getUint32(0) * 2 ** 32 + view.getUint32(4);
}

/** One final client frame, masked with `mask` (4 random bytes unless given). */
export function encodeClientFrame(
  opcode: number,
  payload: Uint8Array,
  mask: Uint8Array = crypto.getRandomValues(new Uint8Array(4)),
): Uint8Array {
  const n = payload.length;
  const extended = n <= 125 ? 0 : n <= 0xffff ? 2 : 8;
  const frame = new Uint8Array(2 + extended + 4 + n);
  const view = new DataView(frame.buffer);
  frame[0] = 0x80 | opcode;
  frame[1] = 0x80 | (extended === 0 ? n : extended === 2 ? 126 : 127);
  if (extended === 2) view.setUint16(2, n);
  if (extended === 8) view.setBigUint64(2, BigInt(n));
  const at = 2 + extended;
  frame.set(mask, at);
  for (let k = 0; k < n; k++) frame[at + 4 + k] = payload[k] ^ mask[k & 3];
  return frame;
}

/** A fresh `Sec-WebSocket-Key`: 16 random bytes in base64. */
export function randomKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
}
