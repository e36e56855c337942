// Stands in for `ava` inside the mutation test runner (ava-runner.mjs), and only there: the unit
// files register their tests here instead of in an ava worker, so one process loads them once and
// reruns them for every mutant. It implements the part of ava's API the unit tests use; an
// assertion failure throws (ava records it and goes on), which fails the test either way. The
// runner checks on the unmutated code that every test passes here, as under ava (the dry run).
import { isDeepStrictEqual } from "node:util";

const registry = (globalThis.__lunlinkAvaShim ??= { files: new Map(), current: undefined });

class AssertionError extends Error {
  constructor(message, details) {
    super(details === undefined ? message : `${message}\n${details}`);
    this.name = "AssertionError";
  }
}

const show = (value) => {
  try {
    return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? `<${v.constructor.name} ${v.length}>` : v));
  } catch {
    return String(value);
  }
};

function like(actual, selector, path = "") {
  if (selector !== null && typeof selector === "object" && !Array.isArray(selector) && Object.getPrototypeOf(selector) === Object.prototype) {
    if (actual === null || typeof actual !== "object") throw new AssertionError(`t.like: ${path || "value"} is not an object`, show(actual));
    for (const key of Object.keys(selector)) like(actual[key], selector[key], `${path}.${key}`);
    return;
  }
  if (!isDeepStrictEqual(actual, selector)) throw new AssertionError(`t.like: ${path} differs`, `${show(actual)} !== ${show(selector)}`);
}

function checkThrown(error, expectation, message) {
  if (expectation === undefined || expectation === null) return;
  if (typeof expectation === "function") {
    if (!(error instanceof expectation)) throw new AssertionError(`${message}: wrong error class`, show(error?.message));
    return;
  }
  const { message: m, code, instanceOf, name, is } = expectation;
  if (is !== undefined && error !== is) throw new AssertionError(`${message}: not the expected error`);
  if (instanceOf !== undefined && !(error instanceof instanceOf)) throw new AssertionError(`${message}: wrong error class`);
  if (name !== undefined && error?.name !== name) throw new AssertionError(`${message}: name ${error?.name}`);
  if (code !== undefined && error?.code !== code) throw new AssertionError(`${message}: code ${error?.code}, expected ${code}`);
  if (m instanceof RegExp && !m.test(error?.message)) throw new AssertionError(`${message}: message ${show(error?.message)} does not match ${m}`);
  if (typeof m === "string" && error?.message !== m) throw new AssertionError(`${message}: message ${show(error?.message)}`);
  if (typeof m === "function" && !m(error?.message)) throw new AssertionError(`${message}: message ${show(error?.message)} refused`);
}

/** The `t` of one test: ava's assertions used by the unit tests, throwing on failure. */
export function executionContext(title, teardowns) {
  const fail = (what, details) => {
    throw new AssertionError(`${title}: ${what}`, details);
  };
  return {
    title,
    is: (a, b, m) => Object.is(a, b) || fail(`t.is ${m ?? ""}`, `${show(a)} !== ${show(b)}`),
    not: (a, b, m) => !Object.is(a, b) || fail(`t.not ${m ?? ""}`, show(a)),
    deepEqual: (a, b, m) => isDeepStrictEqual(a, b) || fail(`t.deepEqual ${m ?? ""}`, `${show(a)}\n!==\n${show(b)}`),
    notDeepEqual: (a, b, m) => !isDeepStrictEqual(a, b) || fail(`t.notDeepEqual ${m ?? ""}`, show(a)),
    like: (a, selector) => like(a, selector),
    true: (v, m) => v === true || fail(`t.true ${m ?? ""}`, show(v)),
    false: (v, m) => v === false || fail(`t.false ${m ?? ""}`, show(v)),
    truthy: (v, m) => Boolean(v) || fail(`t.truthy ${m ?? ""}`, show(v)),
    falsy: (v, m) => !v || fail(`t.falsy ${m ?? ""}`, show(v)),
    regex: (s, re, m) => re.test(s) || fail(`t.regex ${m ?? ""}`, `${show(s)} !~ ${re}`),
    pass: () => true,
    fail: (m) => fail(`t.fail ${m ?? ""}`),
    log: () => {},
    teardown: (fn) => teardowns.push(fn),
    throws(fn, expectation, m) {
      let result;
      try {
        result = fn();
      } catch (error) {
        checkThrown(error, expectation, `${title}: t.throws ${m ?? ""}`);
        return error;
      }
      if (result !== null && typeof result?.then === "function") fail("t.throws got a promise: use t.throwsAsync");
      return fail(`t.throws ${m ?? ""}: nothing was thrown`);
    },
    async throwsAsync(thrower, expectation, m) {
      try {
        await (typeof thrower === "function" ? thrower() : thrower);
      } catch (error) {
        checkThrown(error, expectation, `${title}: t.throwsAsync ${m ?? ""}`);
        return error;
      }
      return fail(`t.throwsAsync ${m ?? ""}: nothing was rejected`);
    },
    notThrows(fn, m) {
      try {
        fn();
      } catch (error) {
        fail(`t.notThrows ${m ?? ""}`, String(error));
      }
    },
  };
}

function file() {
  const current = registry.current;
  if (current === undefined) throw new Error("ava shim: a test registered outside a test file import");
  return current;
}

export default function test(title, fn) {
  file().tests.push({ title, fn });
}
test.serial = test;
test.before = (fn) => file().before.push(fn);
test.after = (fn) => file().after.push(fn);
test.beforeEach = (fn) => file().beforeEach.push(fn);
test.afterEach = (fn) => file().afterEach.push(fn);
test.skip = () => {};
test.todo = () => {};
test.only = () => {
  throw new Error("ava shim: test.only is not supported");
};
