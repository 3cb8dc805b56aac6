/*
 * spotlift lab workload: a process whose memory and progress can be checked after a migration.
 *
 *   workload SIZE_MIB HOT_MIB STATUS_FILE [PASS_SLEEP_MS]
 *
 * - allocates SIZE_MIB of anonymous memory and fills it with a deterministic pattern;
 * - keeps a running 64-bit sum of every word of the buffer (updated incrementally on each write);
 * - loops forever: one pass writes one word in every page of the first HOT_MIB (the hot set), so the
 *   hot set is dirtied continuously and the rest (the cold set) is never written again; each pass
 *   increments a counter and then sleeps PASS_SLEEP_MS (default 20);
 * - every 100 ms it atomically rewrites STATUS_FILE (write to STATUS_FILE.tmp, rename) with
 *   "pid=<pid in the proc mount's namespace> counter=N sum=HEX now_ms=T max_gap_ms=G verify=V";
 *   max_gap_ms is the longest wall-clock gap between two passes (a freeze shows up there);
 * - on SIGUSR1 it recomputes the sum over the whole buffer and compares it with the running sum:
 *   verify=ok:<counter> or verify=BAD:<counter>. A page lost or zeroed by a migration fails this.
 *   SIGUSR2 resets max_gap_ms to 0.
 *
 * Stdio should be /dev/null: the process keeps no file open, so CRIU can move it between machines.
 * Static build: gcc -O2 -static -o workload workload.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define WORDS_PER_PAGE (PAGE / sizeof(uint64_t))

static volatile sig_atomic_t want_verify, want_reset;
static void on_usr1(int s) { (void)s; want_verify = 1; }
static void on_usr2(int s) { (void)s; want_reset = 1; }

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts); /* wall clock: comparable across VMs booted from the same host */
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline uint64_t pattern(uint64_t i) { return (i + 1) * 0x9E3779B97F4A7C15ULL ^ 0xC0FFEE; }

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s SIZE_MIB HOT_MIB STATUS_FILE [PASS_SLEEP_MS]\n", argv[0]);
    return 2;
  }
  uint64_t size = strtoull(argv[1], 0, 10) << 20, hot = strtoull(argv[2], 0, 10) << 20;
  const char *status = argv[3];
  long sleep_ms = argc > 4 ? atol(argv[4]) : 20;
  if (hot > size) hot = size;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", status);

  uint64_t *buf = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) { perror("mmap"); return 1; }
  uint64_t nwords = size / sizeof(uint64_t), sum = 0;
  for (uint64_t i = 0; i < nwords; i++) { buf[i] = pattern(i); sum += buf[i]; }

  signal(SIGUSR1, on_usr1);
  signal(SIGUSR2, on_usr2);

  uint64_t counter = 0, hot_pages = hot / PAGE, last = now_ms(), last_status = 0, max_gap = 0;
  char verify[64] = "none";
  for (;;) {
    counter++;
    /* one word per hot page, at an offset that moves with the counter */
    uint64_t off = counter % WORDS_PER_PAGE;
    for (uint64_t p = 0; p < hot_pages; p++) {
      uint64_t i = p * WORDS_PER_PAGE + off, v = pattern(i) ^ (counter * 0x100000001B3ULL + p);
      sum += v - buf[i];
      buf[i] = v;
    }
    uint64_t t = now_ms();
    if (want_reset) { want_reset = 0; max_gap = 0; }
    if (t - last > max_gap) max_gap = t - last;
    last = t;
    if (want_verify) {
      want_verify = 0;
      uint64_t s = 0;
      for (uint64_t i = 0; i < nwords; i++) s += buf[i];
      snprintf(verify, sizeof verify, "%s:%llu", s == sum ? "ok" : "BAD", (unsigned long long)counter);
      last_status = 0; /* report at once */
    }
    if (t - last_status >= 100) {
      last_status = t;
      char self[32] = "0";
      ssize_t n = readlink("/proc/self", self, sizeof self - 1);
      if (n > 0) self[n] = 0;
      int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        char line[256];
        int len = snprintf(line, sizeof line, "pid=%s counter=%llu sum=%016llx now_ms=%llu max_gap_ms=%llu verify=%s\n",
                           self, (unsigned long long)counter, (unsigned long long)sum, (unsigned long long)t,
                           (unsigned long long)max_gap, verify);
        if (write(fd, line, len) != len) { /* tmpfs full: keep running, the status goes stale */ }
        close(fd);
        rename(tmp, status);
      }
    }
    if (sleep_ms > 0) {
      struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
      while (nanosleep(&ts, &ts) && errno == EINTR) {}
    }
  }
}
