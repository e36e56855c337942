// One-way latency probe: the C reference for `npm run bench -- latency` (DESIGN.md section 7, row a).
// Same steps as lunlink's writer -> poller on one volume: a writer thread writes a 4096-byte block
// (O_DIRECT, plus O_DSYNC when asked) holding a sequence number and a CLOCK_MONOTONIC timestamp; a
// reader thread re-reads that block with O_DIRECT, sleeping between tries with the same adaptive
// schedule as lunlink's Poller (start at min_us, double while nothing changed, cap at max_us, back to
// min_us after a delivery). The writer waits for the reader before the next round (ping-pong).
// Optional load: a third thread writes 64 KiB blocks (same flags) at load_mbps MB/s to a 16 MiB region
// after the first MiB, as lunlink's loaded row streams data through the same ring.
// Optional mirror (DESIGN.md section 7, row b): a mirror thread re-reads the block on <path> with the same
// adaptive sleep and, when it changed, writes it to the same offset of <mirror_path> (same flags); the
// reader then polls <mirror_path>. Usage:
//   latency <path> <rounds> <dsync 0|1> <min_us> <max_us> [load_mbps [mirror_path]]
// prints one latency (ns) per line.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int rounds, min_us, max_us;
static int wfd, rfd, mfd_src = -1, mfd_dst = -1;
static atomic_int delivered;
static atomic_int finished;
static int load_mbps;
static int64_t *lat;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_us(int us) {
  struct timespec t = {us / 1000000, (long)(us % 1000000) * 1000};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

// The polling both the reader and the mirror do, as lunlink's Poller does it: re-read the block at
// offset 4096 until its sequence differs from `last`, sleeping min_us doubling to max_us between
// reads. Returns the new sequence, or -1 once `finished` is set.
static int64_t wait_for_new_seq(int fd, uint8_t *buf, int64_t last) {
  int sleep = min_us;
  for (;;) {
    if (pread(fd, buf, 4096, 4096) != 4096) { perror("pread"); exit(1); }
    int64_t seq;
    memcpy(&seq, buf, 8);
    if (seq != last) return seq;
    if (atomic_load(&finished)) return -1;
    sleep_us(sleep);
    sleep = sleep * 2 > max_us ? max_us : sleep * 2;
  }
}

static void *reader(void *arg) {
  (void)arg;
  uint8_t *buf;
  if (posix_memalign((void **)&buf, 4096, 4096) != 0) abort();
  for (int64_t expect = 1; expect <= rounds; expect++) {
    int64_t seq = wait_for_new_seq(rfd, buf, expect - 1);
    if (seq != expect) { fprintf(stderr, "reader: seq %lld, expected %lld\n", (long long)seq, (long long)expect); exit(1); }
    int64_t stamp;
    memcpy(&stamp, buf + 8, 8);
    lat[expect - 1] = now_ns() - stamp;
    atomic_store(&delivered, (int)expect);
  }
  free(buf);
  return NULL;
}

static void *mirror(void *arg) {
  (void)arg;
  uint8_t *buf;
  if (posix_memalign((void **)&buf, 4096, 4096) != 0) abort();
  for (int64_t copied = 0;;) {
    int64_t seq = wait_for_new_seq(mfd_src, buf, copied);
    if (seq < 0) break;
    if (pwrite(mfd_dst, buf, 4096, 4096) != 4096) { perror("mirror pwrite"); exit(1); }
    copied = seq;
  }
  free(buf);
  return NULL;
}

static void *loader(void *arg) {
  (void)arg;
  uint8_t *buf;
  if (posix_memalign((void **)&buf, 4096, 65536) != 0) abort();
  memset(buf, 0x5a, 65536);
  const int64_t period_ns = 65536LL * 1000 / load_mbps;  // 64 KiB per period at load_mbps MB/s
  int64_t next = now_ns();
  for (int64_t i = 0; !atomic_load(&finished); i++) {
    if (pwrite(wfd, buf, 65536, (off_t)(1048576 + (i % 256) * 65536)) != 65536) { perror("pwrite load"); exit(1); }
    next += period_ns;
    int64_t wait = next - now_ns();
    if (wait > 0) sleep_us((int)(wait / 1000));
  }
  free(buf);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 6 || argc > 8) { fprintf(stderr, "usage: latency <path> <rounds> <dsync> <min_us> <max_us> [load_mbps [mirror_path]]\n"); return 2; }
  load_mbps = argc >= 7 ? atoi(argv[6]) : 0;
  rounds = atoi(argv[2]);
  min_us = atoi(argv[4]);
  max_us = atoi(argv[5]);
  if (rounds < 1 || rounds > 10000000 || min_us < 1 || max_us < min_us) { fprintf(stderr, "bad arguments\n"); return 2; }
  wfd = open(argv[1], O_RDWR | O_DIRECT | (atoi(argv[3]) ? O_DSYNC : 0));
  const char *read_path = argv[1];
  if (argc == 8) {
    mfd_src = open(argv[1], O_RDONLY | O_DIRECT);
    mfd_dst = open(argv[7], O_RDWR | O_DIRECT | (atoi(argv[3]) ? O_DSYNC : 0));
    if (mfd_src < 0 || mfd_dst < 0) { perror("open mirror"); return 1; }
    read_path = argv[7];
  }
  rfd = open(read_path, O_RDONLY | O_DIRECT);
  if (wfd < 0 || rfd < 0) { perror("open"); return 1; }
  lat = calloc((size_t)rounds, sizeof *lat);
  uint8_t *buf;
  if (lat == NULL || posix_memalign((void **)&buf, 4096, 4096) != 0) return 1;
  memset(buf, 0, 4096);
  if (pwrite(wfd, buf, 4096, 4096) != 4096) { perror("pwrite"); return 1; }
  pthread_t t, l, m;
  if (mfd_dst >= 0) {
    if (pwrite(mfd_dst, buf, 4096, 4096) != 4096) { perror("pwrite"); return 1; }
    pthread_create(&m, NULL, mirror, NULL);
  }
  pthread_create(&t, NULL, reader, NULL);
  if (load_mbps > 0) pthread_create(&l, NULL, loader, NULL);
  for (int64_t seq = 1; seq <= rounds; seq++) {
    int64_t stamp = now_ns();
    memcpy(buf, &seq, 8);
    memcpy(buf + 8, &stamp, 8);
    if (pwrite(wfd, buf, 4096, 4096) != 4096) { perror("pwrite"); return 1; }
    while (atomic_load(&delivered) < seq) sleep_us(20);
  }
  pthread_join(t, NULL);
  atomic_store(&finished, 1);
  if (load_mbps > 0) pthread_join(l, NULL);
  if (mfd_dst >= 0) pthread_join(m, NULL);
  for (int i = 0; i < rounds; i++) printf("%lld\n", (long long)lat[i]);
  return 0;
}
