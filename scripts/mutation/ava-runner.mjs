// A StrykerJS test runner for lunlink's ava unit files, in process (Stryker has no ava runner; its
// command runner costs one ava start per mutant). The files named in LUNLINK_MUTATION_TESTS (JSON)
// are imported once, through tsx and the ava shim (ava-hooks.mjs), with their before hooks; every
// mutant then reruns their tests, one after another, with the mutant switched on. Coverage is per
// test, so a mutant runs only the tests that reach it and one no test reaches is "no coverage".
// Static mutants (module-level code) get a fresh process (reloadEnvironment: false), loaded with
// the mutant on. An infinite loop under a mutant hits Stryker's hit limit or its timeout.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { register } from "node:module";
import { register as registerTsx } from "tsx/esm/api";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { commonTokens, declareClassPlugin, PluginKind, tokens } from "@stryker-mutator/api/plugin";
import { DryRunStatus, MutantRunStatus, TestStatus, toMutantRunResult } from "@stryker-mutator/api/test-runner";

const NS = "__stryker__";
/** In the sandbox (the workers' common working directory). */
const DURATIONS_FILE = ".ava-runner-durations.json";

class AvaInProcessRunner {
  static inject = tokens(commonTokens.logger);

  constructor(logger) {
    this.logger = logger;
    this.files = undefined;
  }

  capabilities() {
    return { reloadEnvironment: false };
  }

  async init() {
    registerTsx();
    register(new URL("./ava-hooks.mjs", import.meta.url));
  }

  /** Imports the test files once (with the mutant already on for a static run) and runs their before hooks. */
  async load() {
    if (this.files !== undefined) return this.files;
    const { executionContext } = await import(new URL("./ava-shim.mjs", import.meta.url).href);
    this.executionContext = executionContext;
    const registry = (globalThis.__lunlinkAvaShim ??= { files: new Map(), current: undefined });
    const names = JSON.parse(process.env.LUNLINK_MUTATION_TESTS ?? "[]");
    const files = [];
    for (const name of names) {
      const entry = { name, tests: [], before: [], after: [], beforeEach: [], afterEach: [] };
      registry.current = entry;
      await import(pathToFileURL(resolve(name)).href);
      registry.current = undefined;
      for (const hook of entry.before) await hook(executionContext(`${name} before`, []));
      files.push(entry);
    }
    this.files = files;
    return files;
  }

  /** Every test's dry-run time (ms), shared through the sandbox with the other workers. */
  durations() {
    this.durationsById ??= existsSync(DURATIONS_FILE) ? JSON.parse(readFileSync(DURATIONS_FILE, "utf8")) : undefined;
    return this.durationsById ?? {};
  }

  /**
   * Runs the tests (all, or those in testFilter); with bail, stops at the first failure. A mutant's
   * tests run fastest first (their dry-run times), so a killed mutant is usually found cheaply.
   */
  async run(testFilter, perTest, bail) {
    const ns = (globalThis[NS] ??= {});
    const results = [];
    const all = (await this.load()).flatMap((file) => file.tests.map((test) => ({ file, test, id: `${file.name} > ${test.title}` })));
    const chosen = testFilter === undefined ? all : all.filter((e) => testFilter.includes(e.id));
    const durations = this.durations();
    chosen.sort((a, b) => (durations[a.id] ?? 0) - (durations[b.id] ?? 0));
    for (const { file, test, id } of chosen) {
      if (perTest) ns.currentTestId = id;
      const teardowns = [];
      const t = this.executionContext(test.title, teardowns);
      const started = performance.now();
      try {
        for (const hook of file.beforeEach) await hook(t);
        await test.fn(t);
        for (const hook of file.afterEach) await hook(t);
        results.push({ id, name: id, status: TestStatus.Success, timeSpentMs: performance.now() - started });
      } catch (error) {
        results.push({ id, name: id, status: TestStatus.Failed, failureMessage: String(error?.stack ?? error), timeSpentMs: performance.now() - started });
      } finally {
        for (const fn of teardowns.reverse()) await fn();
        if (perTest) ns.currentTestId = undefined;
      }
      if (bail && results.at(-1).status === TestStatus.Failed) return results;
    }
    return results;
  }

  async dryRun(options) {
    const ns = (globalThis[NS] ??= {});
    ns.activeMutant = undefined;
    const perTest = options.coverageAnalysis === "perTest";
    const tests = await this.run(undefined, perTest, false);
    writeFileSync(DURATIONS_FILE, JSON.stringify(Object.fromEntries(tests.map((t) => [t.id, t.timeSpentMs]))));
    const coverage = ns.mutantCoverage ?? { static: {}, perTest: {} };
    ns.mutantCoverage = { static: {}, perTest: {} };
    return { status: DryRunStatus.Complete, tests, mutantCoverage: options.coverageAnalysis === "off" ? undefined : coverage };
  }

  async mutantRun(options) {
    const ns = (globalThis[NS] ??= {});
    ns.activeMutant = options.activeMutant.id;
    ns.hitLimit = options.hitLimit;
    ns.hitCount = options.hitLimit === undefined ? undefined : 0;
    try {
      let tests;
      try {
        tests = await this.run(options.testFilter, false, !options.disableBail);
      } catch (error) {
        // A unit file that fails to load (import or before hook) under the mutant: ava fails that file.
        return { status: MutantRunStatus.Killed, failureMessage: `loading the unit files: ${String(error?.stack ?? error)}`, killedBy: [], nrOfTests: 0 };
      }
      if (ns.hitLimit !== undefined && ns.hitCount > ns.hitLimit) return { status: MutantRunStatus.Timeout, reason: `hit limit reached (${ns.hitCount}/${ns.hitLimit})` };
      return toMutantRunResult({ status: DryRunStatus.Complete, tests });
    } finally {
      ns.activeMutant = undefined;
      ns.hitLimit = undefined;
      ns.hitCount = undefined;
    }
  }

  async dispose() {
    for (const file of this.files ?? []) for (const hook of file.after) await hook(this.executionContext(`${file.name} after`, []));
  }
}

export const strykerPlugins = [declareClassPlugin(PluginKind.TestRunner, "ava-inprocess", AvaInProcessRunner)];
