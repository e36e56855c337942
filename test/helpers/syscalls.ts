// Read syscalls of the addon's I/O threads, for tests that count a native watch's re-reads.
import { readdir, readFile } from "node:fs/promises";

/**
 * read(2)-family syscalls (/proc/<tid>/io syscr: pread64 included) made so far by this process's
 * threads named lunlink-io (the addon's volume threads, where a watch re-reads). The rest of the
 * process (ava's IPC, Node's own reads) is not counted, so a busy machine cannot add reads that are
 * not a watch's: two CI runs under load counted 121 and 259 reads of the whole process in a 400 ms
 * watch whose thread makes ~30.
 */
export async function ioThreadReads(): Promise<number> {
  let reads = 0;
  for (const tid of await readdir("/proc/self/task")) {
    try {
      if ((await readFile(`/proc/self/task/${tid}/comm`, "utf8")).trim() !== "lunlink-io") continue;
      reads += Number(/^syscr: (\d+)$/m.exec(await readFile(`/proc/self/task/${tid}/io`, "utf8"))![1]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return reads;
}
