// Types for the parts of buffer-layout (pabigot/buffer-layout, plain JS, no typings) that
// bench/layout.ts uses.
declare module "buffer-layout" {
  export class Layout<T = unknown> {
    span: number;
    property: string | undefined;
    decode(b: Buffer, offset?: number): T;
    encode(src: T, b: Buffer, offset?: number): number;
  }
  export function struct<T = Record<string, unknown>>(fields: Layout[], property?: string): Layout<T>;
  export function u8(property?: string): Layout<number>;
  export function u16(property?: string): Layout<number>;
  export function u32(property?: string): Layout<number>;
  export function nu64(property?: string): Layout<number>;
  export function blob(length: number, property?: string): Layout<Buffer>;
}
