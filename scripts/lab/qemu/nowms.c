/* The wall clock in milliseconds since the epoch (busybox date has no %N).
 *   nowms            print it
 *   nowms set MS     set it (the lab aligns the VMs' clocks with the host's, since a guest boots
 *                    from the emulated RTC with 1 s resolution)
 * gcc -O2 -static */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
  struct timespec ts;
  if (argc == 3 && strcmp(argv[1], "set") == 0) {
    long long ms = atoll(argv[2]);
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    if (ms <= 0 || clock_settime(CLOCK_REALTIME, &ts)) { perror("clock_settime"); return 1; }
  }
  clock_gettime(CLOCK_REALTIME, &ts);
  printf("%lld\n", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return 0;
}
