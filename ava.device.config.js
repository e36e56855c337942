// Device tests: loop devices, FUSE mounts, nbdkit, file systems. One file at a time, one test at a
// time, because they share the kernel's loop devices and some stall devices on purpose.
export default {
  files: ["test/device/**/*.test.ts"],
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  workerThreads: false,
  concurrency: 1,
  serial: true,
  // Inactivity bound (no test completed for this long): a hang guard, above the longest test (the
  // 60 s writer flood, issue 11). Under load (stress-ng, load 17-54 on 2 cores) mirror-remote's three
  // tests took 149 s and cluster-mirrors' single test 112 s: 300 s leaves a slow machine its margin.
  timeout: "300s",
};
