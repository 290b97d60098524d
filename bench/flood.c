/* flood: the benchmarks' packet sender, run in the scanner namespace. Hand-made IPv4 TCP
 * probes (SYN, FIN, NULL, XMAS in turn) from a range of sources, written straight to the
 * link with sendmmsg on an AF_PACKET socket with PACKET_QDISC_BYPASS: no routing, no
 * neighbour lookup, no qdisc per packet, so it offers far more than hping3 can.
 * Paced to --rate packets/s (0: as fast as it can) for --seconds, or until --count.
 * Prints one JSON line: packets offered (handed to the device), the achieved rate, the
 * send errors and its own CPU seconds.
 *
 *   flood --ifname DEV --dst-mac MAC --dst A.B.C.D [--port N] [--src-base A.B.C.D]
 *         [--sources N] [--flags syn,fin,null,xmas] [--rate PPS] [--seconds S]
 *         [--count N] [--batch N]
 *
 * Needs CAP_NET_RAW. Built by the benchmarks with gcc (bench/flood-binary.ts). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_LEN 54 /* Ethernet 14 + IPv4 20 + TCP 20 */
#define MAX_BATCH 1024

enum { F_FIN = 0x01, F_SYN = 0x02, F_PSH = 0x08, F_URG = 0x20 };

static void die(const char *what, const char *detail) {
  fprintf(stderr, "flood: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(2);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)(p[n - 1] << 8);
  return sum;
}

static uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

static int parse_mac(const char *text, uint8_t mac[6]) {
  unsigned v[6];
  if (sscanf(text, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 255) return -1;
    mac[i] = (uint8_t)v[i];
  }
  return 0;
}

static int parse_flags(const char *text, uint8_t *out, int max) {
  int n = 0;
  char *copy = strdup(text), *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (n == max) break;
    if (!strcmp(t, "syn")) out[n++] = F_SYN;
    else if (!strcmp(t, "fin")) out[n++] = F_FIN;
    else if (!strcmp(t, "null")) out[n++] = 0;
    else if (!strcmp(t, "xmas")) out[n++] = F_FIN | F_PSH | F_URG;
    else {
      free(copy);
      return -1;
    }
  }
  free(copy);
  return n;
}

/* The frame of packet number i: its flags, source and ports; both checksums complete. */
static void fill(uint8_t *f, const uint8_t *tmpl, uint64_t i, uint32_t src, uint8_t flags) {
  memcpy(f, tmpl, FRAME_LEN);
  uint8_t *ip = f + 14, *tcp = ip + 20;
  put16(ip + 4, (uint16_t)i);
  put32(ip + 12, src);
  put16(ip + 10, fold(sum16(ip, 20, 0)));
  put16(tcp, (uint16_t)(1024 + i % 60000));
  put32(tcp + 4, (uint32_t)i);
  tcp[13] = flags;
  uint32_t pseudo = sum16(ip + 12, 8, 0) + 6 + 20;
  put16(tcp + 16, fold(sum16(tcp, 20, pseudo)));
}

int main(int argc, char **argv) {
  const char *ifname = NULL, *dst_mac = NULL, *dst = NULL, *src_base = "198.18.1.1", *flag_list = "syn,fin,null,xmas";
  double rate = 0, seconds = 1;
  uint64_t count = 0, sources = 1;
  int batch = 64, port = 1;
  static const struct option options[] = {
      {"ifname", required_argument, 0, 'i'}, {"dst-mac", required_argument, 0, 'm'}, {"dst", required_argument, 0, 'd'},
      {"port", required_argument, 0, 'p'},   {"src-base", required_argument, 0, 's'}, {"sources", required_argument, 0, 'n'},
      {"flags", required_argument, 0, 'f'},  {"rate", required_argument, 0, 'r'},     {"seconds", required_argument, 0, 't'},
      {"count", required_argument, 0, 'c'},  {"batch", required_argument, 0, 'b'},    {0, 0, 0, 0}};
  for (int o; (o = getopt_long(argc, argv, "", options, NULL)) != -1;) {
    switch (o) {
      case 'i': ifname = optarg; break;
      case 'm': dst_mac = optarg; break;
      case 'd': dst = optarg; break;
      case 'p': port = atoi(optarg); break;
      case 's': src_base = optarg; break;
      case 'n': sources = strtoull(optarg, NULL, 10); break;
      case 'f': flag_list = optarg; break;
      case 'r': rate = atof(optarg); break;
      case 't': seconds = atof(optarg); break;
      case 'c': count = strtoull(optarg, NULL, 10); break;
      case 'b': batch = atoi(optarg); break;
      default: die("unknown option (see the comment at the top of bench/flood.c)", NULL);
    }
  }
  if (!ifname || !dst_mac || !dst) die("--ifname, --dst-mac and --dst are required", NULL);
  if (port < 1 || port > 65535) die("--port is 1-65535", NULL);
  if (batch < 1 || batch > MAX_BATCH) die("--batch is 1-1024", NULL);
  if (sources < 1) die("--sources is at least 1", NULL);
  if (rate < 0 || seconds <= 0) die("--rate is 0 or more, --seconds more than 0", NULL);
  uint8_t flags[16];
  int nflags = parse_flags(flag_list, flags, 16);
  if (nflags < 1) die("--flags is a comma list of syn, fin, null, xmas", flag_list);
  struct in_addr dst_addr, base_addr;
  if (inet_pton(AF_INET, dst, &dst_addr) != 1) die("--dst is not an IPv4 address", dst);
  if (inet_pton(AF_INET, src_base, &base_addr) != 1) die("--src-base is not an IPv4 address", src_base);
  uint32_t base = ntohl(base_addr.s_addr);
  if ((uint64_t)base + sources - 1 > UINT32_MAX) die("--src-base + --sources runs past 255.255.255.255", NULL);

  int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: sends only, receives nothing */
  if (fd < 0) die("socket(AF_PACKET)", strerror(errno));
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) die("no such interface", ifname);
  int ifindex = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) die("SIOCGIFHWADDR", strerror(errno));
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0) die("PACKET_QDISC_BYPASS", strerror(errno));
  struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP), .sll_ifindex = ifindex, .sll_halen = 6};
  if (parse_mac(dst_mac, to.sll_addr) < 0) die("--dst-mac is not a MAC address", dst_mac);
  if (bind(fd, (struct sockaddr *)&to, sizeof to) < 0) die("bind", strerror(errno));
  prctl(PR_SET_TIMERSLACK, 1UL); /* the pacing sleeps are tens of microseconds */

  /* The template: everything but the per-packet fields fill() writes. */
  uint8_t tmpl[FRAME_LEN] = {0};
  memcpy(tmpl, to.sll_addr, 6);
  memcpy(tmpl + 6, ifr.ifr_hwaddr.sa_data, 6);
  put16(tmpl + 12, ETH_P_IP);
  uint8_t *ip = tmpl + 14, *tcp = ip + 20;
  ip[0] = 0x45;
  put16(ip + 2, 40);
  ip[8] = 64;
  ip[9] = IPPROTO_TCP;
  memcpy(ip + 16, &dst_addr, 4);
  put16(tcp + 2, (uint16_t)port);
  tcp[12] = 0x50;
  put16(tcp + 14, 1024);

  static uint8_t frames[MAX_BATCH][FRAME_LEN];
  static struct iovec iov[MAX_BATCH];
  static struct mmsghdr msgs[MAX_BATCH];
  for (int k = 0; k < batch; k++) {
    iov[k] = (struct iovec){.iov_base = frames[k], .iov_len = FRAME_LEN};
    msgs[k].msg_hdr = (struct msghdr){.msg_iov = &iov[k], .msg_iovlen = 1};
  }

  uint64_t sent = 0, errors = 0;
  double t0 = now_s(), end = t0 + seconds, t = t0;
  while ((count == 0 || sent < count) && (t = now_s()) < end) {
    uint64_t want = (uint64_t)batch;
    if (rate > 0) {
      uint64_t due = (uint64_t)((t - t0) * rate) + 1;
      if (due <= sent) {
        double wake = t0 + (double)(sent + (uint64_t)batch) / rate; /* a batch's worth later */
        if (wake > end) wake = end;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)((wake - t) * 1e9)};
        nanosleep(&ts, NULL);
        continue;
      }
      if (due - sent < want) want = due - sent;
    }
    if (count && count - sent < want) want = count - sent;
    for (uint64_t k = 0; k < want; k++) {
      uint64_t i = sent + k;
      fill(frames[k], tmpl, i, base + (uint32_t)(i % sources), flags[i % (uint64_t)nflags]);
    }
    int n = sendmmsg(fd, msgs, (unsigned)want, 0);
    if (n < 0) {
      if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) die("sendmmsg", strerror(errno));
      errors++;
      continue;
    }
    sent += (uint64_t)n;
  }
  double elapsed = now_s() - t0;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"sent\":%llu,\"seconds\":%.6f,\"rate\":%.1f,\"asked\":%.1f,\"errors\":%llu,\"sources\":%llu,\"cpuUser\":%.3f,\"cpuSystem\":%.3f}\n",
         (unsigned long long)sent, elapsed, (double)sent / elapsed, rate, (unsigned long long)errors, (unsigned long long)sources,
         (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6, (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
  close(fd);
  return 0;
}
