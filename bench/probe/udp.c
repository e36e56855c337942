/* UDP load for the TUN bench, run inside the bench's network namespace.
 *   udp blast <ip> <port> <payload-bytes> <seconds>   sendmmsg 64 datagrams per call until the time is up
 *   udp sink  <ip> <port> <seconds>                   recvmmsg until the time is up
 * Each prints one JSON line: {"packets": N, "seconds": S}. The sink prints {"ready": true} first. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: udp blast|sink ip port [payload] seconds\n");
    return 2;
  }
  const int blast = strcmp(argv[1], "blast") == 0;
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) return 2;
  const double seconds = atof(argv[blast ? 5 : 4]);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) { perror("socket"); return 1; }
  static char data[BATCH][65536];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  const size_t payload = blast ? (size_t)atoi(argv[4]) : sizeof(data[0]);
  memset(msgs, 0, sizeof(msgs));
  for (int i = 0; i < BATCH; i++) {
    memset(data[i], 'l', payload);
    iov[i].iov_base = data[i];
    iov[i].iov_len = payload;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  long long packets = 0;
  const double start = now_s();
  if (blast) {
    if (connect(s, (struct sockaddr*)&addr, sizeof(addr)) != 0) { perror("connect"); return 1; }
    while (now_s() - start < seconds) {
      int n = sendmmsg(s, msgs, BATCH, 0);
      if (n < 0) {
        if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN) continue;
        perror("sendmmsg");
        return 1;
      }
      packets += n;
    }
  } else {
    int size = 32 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    if (bind(s, (struct sockaddr*)&addr, sizeof(addr)) != 0) { perror("bind"); return 1; }
    printf("{\"ready\": true}\n");
    fflush(stdout);
    while (now_s() - start < seconds) {
      struct pollfd p = {s, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int n = recvmmsg(s, msgs, BATCH, MSG_DONTWAIT, NULL);
      if (n > 0) packets += n;
    }
  }
  printf("{\"packets\": %lld, \"seconds\": %.3f}\n", packets, now_s() - start);
  return 0;
}
