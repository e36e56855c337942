// Module resolution hook for the mutation test runner's process: `import test from "ava"` in a unit
// file gets the shim (ava-shim.mjs) instead of ava, so the tests run in this process.
const SHIM_URL = new URL("./ava-shim.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === "ava") return { url: SHIM_URL, shortCircuit: true };
  return next(specifier, context);
}
