import test from "ava";

import { ErrorCode, LunlinkError, describe, errnoName, systemError } from "../../lib/errors.ts";

test("systemError maps errno to a stable code and keeps errno, syscall and path", (t) => {
  const cases: [number, ErrorCode][] = [
    [2, ErrorCode.NotFound],
    [21, ErrorCode.NotAVolume],
    [16, ErrorCode.Busy],
    [13, ErrorCode.PermissionDenied],
    [30, ErrorCode.ReadOnly],
    [5, ErrorCode.IoError],
    [28, ErrorCode.NoSpace],
    [22, ErrorCode.System],
  ];
  for (const [errno, code] of cases) {
    const error = systemError(errno, "pwrite", "/dev/sdz", "write at offset 0 on");
    t.true(error instanceof LunlinkError);
    t.is(error.code, code, `errno ${errno}`);
    t.is(error.errno, errno);
    t.is(error.syscall, "pwrite");
    t.is(error.path, "/dev/sdz");
    t.true(error.message.includes(errnoName(errno)), error.message);
    t.true(error.message.includes("/dev/sdz"));
  }
});

test("errnoName names known errnos and survives unknown ones", (t) => {
  t.is(errnoName(5), "EIO");
  t.is(errnoName(28), "ENOSPC");
  t.is(errnoName(15), "ENOTBLK");
  t.regex(errnoName(4242), /4242/);
});

test("LunlinkError has no errno/syscall/path keys unless given", (t) => {
  const error = new LunlinkError(ErrorCode.Closed, "closed");
  t.false(Object.hasOwn(error, "errno"));
  t.false(Object.hasOwn(error, "path"));
  t.is(error.name, "LunlinkError");
  const wrapped = new LunlinkError(ErrorCode.IoError, "x", { cause: new Error("inner") });
  t.is((wrapped.cause as Error).message, "inner");
});

test("describe renders bad values briefly", (t) => {
  t.is(describe(12n), "12n");
  t.is(describe("a".repeat(200)).length, 82);
  t.is(describe(new Uint8Array(3)), "Uint8Array(3)");
  t.is(describe(undefined), "undefined");
  t.is(describe({}), "[object Object]");
});
