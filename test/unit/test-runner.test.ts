// The test runner's own output: CI reads "N passed, N failed" that scripts/test.mjs derives from ava's
// TAP. ava 7's TAP reporter died on a failure it could not dump (YAMLException) and on an inactivity
// timeout (avajs/ava#3461), losing the failing test's name and the summary; scripts/ava-tap.mjs keeps
// it alive. Each fixture is an ava project of its own with one failure.
import test from "ava";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}/`, import.meta.url));
const WRAPPER = fileURLToPath(new URL("../../scripts/ava-tap.mjs", import.meta.url));
const AVA = fileURLToPath(new URL("cli.mjs", import.meta.resolve("ava")));

function runTap(entry: string, cwd: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [entry, "--tap"], { cwd, encoding: "utf8", timeout: 120_000 }, (error, stdout) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : null, stdout });
    });
  });
}

test("the TAP reporter names a failure whose error has an undefined field, and the run ends with its summary", async (t) => {
  const { code, stdout } = await runTap(WRAPPER, fixture("tap-undefined-field"));
  t.regex(stdout, /^not ok \d+ - fails with an error whose stack is not a string$/m);
  t.regex(stdout, /^ok \d+ - passes before$/m);
  t.regex(stdout, /^ok \d+ - passes after$/m);
  t.regex(stdout, /^# pass 2$/m);
  t.regex(stdout, /^# fail 1$/m);
  t.is(code, 1);
});

test("control: ava's own TAP reporter loses that failure and the summary (why the wrapper exists)", async (t) => {
  const { stdout } = await runTap(AVA, fixture("tap-undefined-field"));
  t.notRegex(stdout, /^not ok \d+ - fails with an error whose stack is not a string$/m);
  t.notRegex(stdout, /^# fail \d+$/m);
});

test("a test that outlasts ava's inactivity timeout is reported as failed by name, and the run ends with its summary", async (t) => {
  const { code, stdout } = await runTap(WRAPPER, fixture("tap-timeout"));
  t.regex(stdout, /^ok \d+ - passes first$/m);
  t.regex(stdout, /^not ok \d+ - outlasts the inactivity timeout$/m);
  t.regex(stdout, /Exited because no new tests completed within the last 15000ms of inactivity/);
  t.regex(stdout, /^# pass 1$/m);
  t.regex(stdout, /^# fail 1$/m);
  t.is(code, 1);
});

test("control: ava's own TAP reporter reports no test of a timed-out run (why the wrapper exists)", async (t) => {
  const { stdout } = await runTap(AVA, fixture("tap-timeout"));
  t.notRegex(stdout, /^not ok \d+ - outlasts the inactivity timeout$/m);
  t.notRegex(stdout, /^# fail [1-9]/m);
});
