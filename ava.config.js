// Unit and property tests: pure code and plain files, run in parallel.
export default {
  files: ["test/unit/**/*.test.ts"],
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  workerThreads: false,
  // Inactivity guard (no test completed for this long). Above the longest bound a test sets itself
  // (a child process's 120 s timeout in node-versions and test-runner), so a slow test fails by its
  // own name and message, not by ava's; under a CPU hog (npm run test:pressure, load 11 on 2 cores)
  // one run once went 60 s without a test completing.
  timeout: "180s",
};
