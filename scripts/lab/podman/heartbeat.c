/*
 * The lab container's workload (scripts/lab/podman/image.sh puts it in the image as /bin/heartbeat).
 *
 *   heartbeat NAME MEM_MIB HOST PORT [INTERVAL_MS]
 *
 * Sends one UDP datagram a tick from one socket, in the format of scripts/lab/workload.py (so the jest
 * HeartbeatCollector reads it): {"name","seq","counter","ok","mem_mib","pid"}. `counter` lives in this
 * process's memory, so a restored copy that goes on from where the frozen one stopped proves its memory
 * moved. MEM_MIB of a per-page pattern are checked 4 MiB per tick (all of it after a pause longer than
 * three ticks, e.g. a migration); a mismatch turns ok to false for good.
 *
 * C and static, not the shell or Python: busybox's nc has no UDP, and a heartbeat by short-lived TCP
 * connections would sometimes be caught half-open by the checkpoint (a connection CRIU cannot restore on
 * another node's address). Python in a no-registry image would mean copying an interpreter and its libraries.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static uint32_t expected(size_t page) { return (uint32_t)(page * 2654435761u) ^ 0x5b0d1f7u; }

static int page_ok(const unsigned char *mem, size_t page) {
  const uint32_t *w = (const uint32_t *)(mem + page * PAGE);
  for (size_t i = 0; i < PAGE / 4; i += 64)
    if (w[i] != expected(page) + (uint32_t)i) return 0;
  return 1;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: heartbeat NAME MEM_MIB HOST PORT [INTERVAL_MS]\n");
    return 2;
  }
  const char *name = argv[1];
  size_t mem_mib = strtoul(argv[2], NULL, 10);
  long interval = argc > 5 ? strtol(argv[5], NULL, 10) : 100;
  size_t pages = mem_mib * 256;
  unsigned char *mem = pages ? malloc(pages * PAGE) : NULL;
  if (pages && !mem) return 3;
  for (size_t p = 0; p < pages; p++) {
    uint32_t *w = (uint32_t *)(mem + p * PAGE);
    for (size_t i = 0; i < PAGE / 4; i++) w[i] = expected(p) + (uint32_t)i;
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[4]))};
  if (inet_pton(AF_INET, argv[3], &to.sin_addr) != 1) return 2;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return 3;
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);

  unsigned long seq = 0, counter = 0;
  size_t cursor = 0;
  int ok = 1;
  double last = now_ms();
  char msg[512];
  while (!stop) {
    double t = now_ms();
    /* after a pause (a freeze) check everything, else a rolling 4 MiB window */
    size_t n = (t - last > 3.0 * interval) ? pages : (pages < 1024 ? pages : 1024);
    for (size_t k = 0; k < n && ok; k++, cursor = (cursor + 1) % pages) ok = page_ok(mem, cursor);
    last = t;
    counter++;
    int len = snprintf(msg, sizeof msg,
                       "{\"name\":\"%s\",\"seq\":%lu,\"counter\":%lu,\"ok\":%s,\"mem_mib\":%zu,\"pid\":%d}", name,
                       seq, counter, ok ? "true" : "false", mem_mib, (int)getpid());
    /* seq counts datagrams sent, as workload.py's does: a send that fails (no route mid-move) is not one */
    if (sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&to, sizeof to) == len) seq++;
    printf("%s\n", msg);
    fflush(stdout);
    usleep((useconds_t)interval * 1000);
  }
  return 0;
}
