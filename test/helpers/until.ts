// A bounded wait for a condition in tests that drive real timers and I/O: polls `check` every
// `everyMs` and throws "not <what> within <limitMs> ms" once the bound has passed.
export async function pollUntil(what: string, check: () => boolean | Promise<boolean>, limitMs: number, everyMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not ${what} within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
