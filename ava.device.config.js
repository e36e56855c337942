// Device tests: loop devices, FUSE mounts, nbdkit, file systems. One file at a time, one test at a
// time, because they share the kernel's loop devices and some stall devices on purpose.
export default {
  files: ["test/device/**/*.test.ts"],
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  workerThreads: false,
  concurrency: 1,
  serial: true,
  // Inactivity bound: the longest test (the 60 s writer flood, issue 11) must finish inside it.
  timeout: "150s",
};
