// Unit and property tests: pure code and plain files, run in parallel.
export default {
  files: ["test/unit/**/*.test.ts"],
  extensions: { ts: "module" },
  nodeArguments: ["--import=tsx"],
  workerThreads: false,
  timeout: "60s",
};
