/* What a pod with NET_RAW (in the runtime's default capability set) can do: send TCP SYNs
 * with a source address of its choosing. Usage: forge SOURCE TARGET:PORT...
 * One SYN per target, through a raw socket that writes the IPv4 header itself.
 * Built static, so its image is this one file. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint16_t checksum(const void *data, size_t len, uint32_t sum) {
  const uint8_t *p = data;
  for (; len > 1; p += 2, len -= 2) sum += (uint32_t)(p[0] << 8 | p[1]);
  if (len) sum += (uint32_t)(p[0] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons((uint16_t)~sum);
}

static int send_syn(int fd, struct in_addr source, const char *target) {
  char host[64];
  const char *colon = strrchr(target, ':');
  if (!colon || (size_t)(colon - target) >= sizeof host) return -2;
  memcpy(host, target, (size_t)(colon - target));
  host[colon - target] = '\0';
  struct sockaddr_in to = {.sin_family = AF_INET};
  long port = strtol(colon + 1, NULL, 10);
  if (inet_pton(AF_INET, host, &to.sin_addr) != 1 || port < 1 || port > 65535) return -2;

  struct {
    struct iphdr ip;
    struct tcphdr tcp;
  } packet = {0};
  packet.ip.version = 4;
  packet.ip.ihl = 5;
  packet.ip.ttl = 64;
  packet.ip.protocol = IPPROTO_TCP;
  packet.ip.tot_len = htons(sizeof packet);
  packet.ip.saddr = source.s_addr;
  packet.ip.daddr = to.sin_addr.s_addr; /* the kernel fills in the id and the header checksum */
  packet.tcp.source = htons(40000 + (uint16_t)(getpid() % 20000));
  packet.tcp.dest = htons((uint16_t)port);
  packet.tcp.seq = htonl(0x6b707365);
  packet.tcp.doff = 5;
  packet.tcp.syn = 1;
  packet.tcp.window = htons(1024);
  struct {
    uint32_t source, target;
    uint8_t zero, protocol;
    uint16_t length;
  } pseudo = {packet.ip.saddr, packet.ip.daddr, 0, IPPROTO_TCP, htons(sizeof packet.tcp)};
  uint32_t sum = 0;
  const uint8_t *p = (const uint8_t *)&pseudo;
  for (size_t i = 0; i < sizeof pseudo; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  packet.tcp.check = checksum(&packet.tcp, sizeof packet.tcp, sum);
  to.sin_port = 0;
  return sendto(fd, &packet, sizeof packet, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)sizeof packet ? 0 : -1;
}

int main(int argc, char **argv) {
  struct in_addr source;
  if (argc < 3 || inet_pton(AF_INET, argv[1], &source) != 1) {
    fprintf(stderr, "usage: forge SOURCE TARGET:PORT...\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) {
    perror("forge: raw socket");
    return 1;
  }
  for (int i = 2; i < argc; i++) {
    int rc = send_syn(fd, source, argv[i]);
    if (rc == -2) {
      fprintf(stderr, "forge: %s is no IPv4 ADDRESS:PORT\n", argv[i]);
      return 2;
    }
    if (rc < 0) {
      perror(argv[i]);
      return 1;
    }
    printf("forged %s -> %s\n", argv[1], argv[i]);
  }
  return 0;
}
