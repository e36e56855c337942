// Where CLI commands write, so tests can capture it; and the usage error type.
export interface Output {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export class UsageError extends Error {
  override name = "UsageError";
}

/** JSON with bigints as numbers when exact, else as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => (typeof v === "bigint" ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v),
    2,
  );
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function formatBytes(bytes: bigint): string {
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${UNITS[unit]} (${bytes} bytes)`;
}
