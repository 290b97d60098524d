// Raw-socket reader for the stealth detectors. Per packet, JavaScript cost more than the
// kernel (7 of 8.5 us under a SYN flood, with an allocation or five per packet), so the
// packet path lives here:
//  - a classic BPF filter on the socket drops well-formed packets that can never be
//    probes (TCP with ACK or RST, ports not watched) before they are queued; anything
//    unusual passes, so malformed packets are still counted by reason;
//  - one wake-up drains the socket with recvmmsg(), BATCH packets per call; under load
//    the reader stops polling and drains every POLL_PAUSE_MS instead, since a reader that
//    keeps up wakes for every packet or two and the wake-ups become the cost;
//  - each packet is parsed here (the rules of src/net/packet.ts, which the tests hold
//    this parser to), counted, checked against the watched and in-use port tables, and
//    a probe becomes a 32-byte record; a probe identical to the one before it (a flood)
//    only bumps that record's count;
//  - JavaScript gets one callback per wake-up with the records.
//
// Record layout (RECORD bytes, host byte order): u8 family (4/6), u8 TCP flags (0 for
// UDP), u16 destination port, u32 count of identical packets, u32 IPv4 destination
// (0 for IPv6), u32 microseconds since the (first) packet reached the host, as the
// kernel stamped it (SO_TIMESTAMPNS), so a block's latency counts the time it waited in
// the socket too; 16 bytes source address (IPv4 in the first 4); u32 index of the
// interface the packet came in on and 16 bytes destination address (IP_PKTINFO and
// IPV6_PKTINFO: an IPv6 raw socket never sees the IPv6 header), 0 when unknown.
#define _GNU_SOURCE /* recvmmsg */
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "js_poll.h"

#define BATCH 64
#define CAPTURE 128
#define RECORD 64
#define MAX_BATCHES_PER_WAKEUP 16 /* then yield to the event loop */
#define OUT_RECORDS (BATCH * MAX_BATCHES_PER_WAKEUP)
#define BUSY 16         /* packets per drain from which the socket counts as busy */
#define POLL_PAUSE_MS 1 /* while busy: drain on a timer, about 100 packets at 100k/s */
#define MAX_FILTER_RANGES 1000    /* 4 instructions each, under BPF_MAXINSNS (4096) */

/* Counters shared with JavaScript (a Float64Array): packets read, then the parser's drop
 * reasons in the order of DROP_REASONS in src/net/packet.ts, then what was not a probe. */
enum {
  C_PACKETS,
  R_TRUNCATED_IP,
  R_BAD_VERSION,
  R_BAD_IHL,
  R_FRAGMENT,
  R_EXTENSION_HEADER, /* only parseIPv6 names it; an AF_INET6 raw socket never shows one */
  R_NOT_TCP_UDP,
  R_TRUNCATED_TCP,
  R_BAD_TCP_OFFSET,
  R_TRUNCATED_UDP,
  C_REPLY,     /* TCP with ACK or RST */
  C_UNWATCHED, /* a port not watched, or in use by a real service */
  C_PROBES,
  C_DRAINS, /* wake-ups and timer rounds that read the socket */
  C_COUNT
};

typedef struct {
  js_poll_t base;
  uv_timer_t timer;
  int timer_open;
  int paused; /* polling stopped, timer running */
  int family, protocol;
  napi_ref buffer_ref, counters_ref, watched_ref, in_use_ref;
  uint8_t *out; /* OUT_RECORDS records, shared with JavaScript */
  double *counters;
  const uint8_t *watched, *in_use; /* 65536 bytes each, owned by JavaScript */
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage names[BATCH];
  union {
    struct cmsghdr align;
    uint8_t bytes[CMSG_SPACE(sizeof(struct timespec)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
  } control[BATCH];
  uint8_t packets[BATCH][CAPTURE];
} reader_t;

/* One packet as captured: 0 and the port, flags and IPv4 destination, or a drop reason.
 * IPv4 packets come with their header; IPv6 ones from the transport header. */
static int parse(const uint8_t *p, unsigned len, int family, int protocol, uint16_t *port, uint8_t *flags, uint32_t *dst4) {
  unsigned off = 0;
  int proto = protocol;
  *dst4 = 0;
  if (family == 4) {
    if (len < 20) return R_TRUNCATED_IP;
    if (p[0] >> 4 != 4) return R_BAD_VERSION;
    unsigned ihl = (p[0] & 0x0fu) * 4;
    if (ihl < 20) return R_BAD_IHL;
    if (len < ihl) return R_TRUNCATED_IP;
    if (((p[6] & 0x1f) << 8) | p[7]) return R_FRAGMENT;
    proto = p[9];
    *dst4 = ((uint32_t)p[16] << 24) | ((uint32_t)p[17] << 16) | ((uint32_t)p[18] << 8) | p[19];
    off = ihl;
  }
  if (proto == IPPROTO_TCP) {
    if (len < off + 14) return R_TRUNCATED_TCP;
    if ((p[off + 12] >> 4) * 4 < 20) return R_BAD_TCP_OFFSET;
    *flags = p[off + 13];
  } else if (proto == IPPROTO_UDP) {
    if (len < off + 8) return R_TRUNCATED_UDP;
    *flags = 0;
  } else
    return R_NOT_TCP_UDP;
  *port = (uint16_t)((p[off + 2] << 8) | p[off + 3]);
  return 0;
}

static void deliver(reader_t *r, int count) {
  napi_env env = r->base.env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[2];
  if (napi_get_reference_value(env, r->buffer_ref, &args[0]) == napi_ok && napi_create_int32(env, count, &args[1]) == napi_ok)
    js_poll_call(&r->base, 2, args);
  napi_close_handle_scope(env, scope);
}

/* Microseconds from the kernel's receive stamp of a packet to `now` (0 without a stamp). */
static uint32_t age_us(struct msghdr *m, const struct timespec *now) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
    struct timespec t;
    memcpy(&t, CMSG_DATA(c), sizeof t);
    int64_t us = ((int64_t)now->tv_sec - t.tv_sec) * 1000000 + ((int64_t)now->tv_nsec - t.tv_nsec) / 1000;
    return us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  }
  return 0;
}

/* The interface a packet came in on and its destination, from IP_PKTINFO or IPV6_PKTINFO. */
static void packet_info(struct msghdr *m, uint32_t *ifindex, uint8_t dst[16]) {
  *ifindex = 0;
  memset(dst, 0, 16);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo info;
      memcpy(&info, CMSG_DATA(c), sizeof info);
      *ifindex = (uint32_t)info.ipi_ifindex;
      memcpy(dst, &info.ipi_addr, 4);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo info;
      memcpy(&info, CMSG_DATA(c), sizeof info);
      *ifindex = info.ipi6_ifindex;
      memcpy(dst, &info.ipi6_addr, 16);
    }
  }
}

/* Reads what is queued; returns the number of packets. */
static int drain(reader_t *r) {
  double *c = r->counters;
  int records = 0, total = 0;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  c[C_DRAINS]++;
  uint8_t *last = NULL;
  for (int round = 0; round < MAX_BATCHES_PER_WAKEUP; round++) {
    for (int i = 0; i < BATCH; i++) {
      r->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
      r->msgs[i].msg_hdr.msg_controllen = sizeof r->control[i];
    }
    int n = recvmmsg(r->base.fd, r->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) break; /* EAGAIN: drained */
    c[C_PACKETS] += n;
    total += n;
    for (int i = 0; i < n; i++) {
      unsigned len = r->msgs[i].msg_len > CAPTURE ? CAPTURE : r->msgs[i].msg_len;
      uint16_t port = 0;
      uint8_t flags = 0;
      uint32_t dst4 = 0;
      int reason = parse(r->packets[i], len, r->family, r->protocol, &port, &flags, &dst4);
      if (reason) {
        c[reason]++;
        continue;
      }
      if (r->protocol == IPPROTO_TCP && (flags & 0x14)) {
        c[C_REPLY]++;
        continue;
      }
      if (!r->watched[port] || r->in_use[port]) {
        c[C_UNWATCHED]++;
        continue;
      }
      c[C_PROBES]++;
      uint8_t source[16] = {0};
      if (r->names[i].ss_family == AF_INET6)
        memcpy(source, &((struct sockaddr_in6 *)&r->names[i])->sin6_addr, 16);
      else if (r->names[i].ss_family == AF_INET)
        memcpy(source, &((struct sockaddr_in *)&r->names[i])->sin_addr, 4);
      uint32_t ifindex;
      uint8_t dst[16];
      packet_info(&r->msgs[i].msg_hdr, &ifindex, dst);
      if (last && last[1] == flags && *(uint16_t *)(last + 2) == port && *(uint32_t *)(last + 8) == dst4 &&
          memcmp(last + 16, source, 16) == 0 && *(uint32_t *)(last + 32) == ifindex && memcmp(last + 36, dst, 16) == 0) {
        (*(uint32_t *)(last + 4))++;
        continue;
      }
      last = r->out + (size_t)records++ * RECORD;
      last[0] = (uint8_t)r->family;
      last[1] = flags;
      *(uint16_t *)(last + 2) = port;
      *(uint32_t *)(last + 4) = 1;
      *(uint32_t *)(last + 8) = dst4;
      *(uint32_t *)(last + 12) = age_us(&r->msgs[i].msg_hdr, &now);
      memcpy(last + 16, source, 16);
      *(uint32_t *)(last + 32) = ifindex;
      memcpy(last + 36, dst, 16);
    }
    if (n < BATCH) break;
  }
  if (records > 0) deliver(r, records);
  return total;
}

static void on_readable(uv_poll_t *handle, int status, int events);

static void on_timer(uv_timer_t *timer) {
  reader_t *r = (reader_t *)timer->data;
  if (r->base.closing) return;
  if (drain(r) >= BUSY && !r->base.closing) {
    uv_timer_start(&r->timer, on_timer, POLL_PAUSE_MS, 0);
  } else if (!r->base.closing) {
    r->paused = 0;
    uv_poll_start(&r->base.poll, UV_READABLE, on_readable);
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  reader_t *r = (reader_t *)handle->data;
  if (status < 0 || r->base.closing) return;
  if (drain(r) >= BUSY && !r->base.closing && !r->paused) {
    r->paused = 1;
    uv_poll_stop(&r->base.poll);
    uv_timer_start(&r->timer, on_timer, POLL_PAUSE_MS, 0);
  }
}

/* On close: the timer goes with the poll (each frees its reference in its close callback). */
static void stop_timer(js_poll_t *p) {
  reader_t *r = (reader_t *)p;
  if (!r->timer_open) return;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, js_poll_handle_closed);
  r->timer_open = 0;
}

/* ---- the socket filter ---- */

#define INS(c, t, f, k) ((struct sock_filter){(c), (t), (f), (k)})
#define ACCEPT 0xffffffffu

/* Accepts every packet except well-formed ones that cannot be probes. `prog` has room for
 * 32 + 4 * MAX_FILTER_RANGES + 1 instructions; returns the count, or 0 for no filter. */
static int build_filter(struct sock_filter *prog, int family, int protocol, const uint8_t *watched) {
  int n = 0;
  const uint32_t header_min = protocol == IPPROTO_TCP ? 14 : 8;
  /* Layout below: every "accept" and "drop" is a ret next to its test, so jumps stay short. */
  if (family == 4) {
    prog[n++] = INS(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0);
    prog[n++] = INS(BPF_JMP | BPF_JGE | BPF_K, 1, 0, 20); /* shorter than a header: user space names it */
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, ACCEPT);
    prog[n++] = INS(BPF_LD | BPF_B | BPF_ABS, 0, 0, 0);
    prog[n++] = INS(BPF_ALU | BPF_AND | BPF_K, 0, 0, 0xf0);
    prog[n++] = INS(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0x40);
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, ACCEPT);
    prog[n++] = INS(BPF_LD | BPF_H | BPF_ABS, 0, 0, 6);
    prog[n++] = INS(BPF_JMP | BPF_JSET | BPF_K, 0, 1, 0x1fff); /* fragment */
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, ACCEPT);
    prog[n++] = INS(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0); /* X = IHL * 4 */
    prog[n++] = INS(BPF_MISC | BPF_TXA, 0, 0, 0);
    prog[n++] = INS(BPF_JMP | BPF_JGE | BPF_K, 1, 0, 20);
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, ACCEPT);
    /* Room for the transport header: len >= IHL * 4 + header_min (a load past the end
     * would end the program with a silent drop instead of a counted one). */
    prog[n++] = INS(BPF_ALU | BPF_ADD | BPF_K, 0, 0, header_min);
    prog[n++] = INS(BPF_MISC | BPF_TAX, 0, 0, 0);
    prog[n++] = INS(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0);
    prog[n++] = INS(BPF_JMP | BPF_JGE | BPF_X, 1, 0, 0);
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, ACCEPT);
    prog[n++] = INS(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0);
  } else {
    prog[n++] = INS(BPF_LDX | BPF_IMM, 0, 0, 0); /* the transport header is at 0 */
    prog[n++] = INS(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0);
    prog[n++] = INS(BPF_JMP | BPF_JGE | BPF_K, 1, 0, header_min);
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, ACCEPT);
  }
  if (protocol == IPPROTO_TCP) {
    prog[n++] = INS(BPF_LD | BPF_B | BPF_IND, 0, 0, 12);
    prog[n++] = INS(BPF_JMP | BPF_JGE | BPF_K, 1, 0, 0x50); /* data offset >= 5 words */
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, ACCEPT);
    prog[n++] = INS(BPF_LD | BPF_B | BPF_IND, 0, 0, 13);
    prog[n++] = INS(BPF_JMP | BPF_JSET | BPF_K, 0, 1, 0x14); /* ACK or RST: a reply */
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, 0);
  }
  prog[n++] = INS(BPF_LD | BPF_H | BPF_IND, 0, 0, 2); /* destination port */
  /* Watched ports as ascending ranges: below a range's start, no later range can match. */
  int ranges = 0;
  for (int port = 0; port < 65536;) {
    if (!watched[port]) {
      port++;
      continue;
    }
    int end = port;
    while (end + 1 < 65536 && watched[end + 1]) end++;
    if (++ranges > MAX_FILTER_RANGES) return 0;
    prog[n++] = INS(BPF_JMP | BPF_JGE | BPF_K, 1, 0, (uint32_t)port);
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, 0);
    prog[n++] = INS(BPF_JMP | BPF_JGT | BPF_K, 1, 0, (uint32_t)end);
    prog[n++] = INS(BPF_RET | BPF_K, 0, 0, ACCEPT);
    port = end + 1;
  }
  prog[n++] = INS(BPF_RET | BPF_K, 0, 0, 0);
  return n;
}

/* Attaches the filter for `watched`, replacing any (the kernel swaps it atomically), or
 * detaches it when the table has too many ranges; returns whether one is attached. */
static int attach_filter(int fd, int family, int protocol, const uint8_t *watched) {
  static struct sock_filter prog[32 + 4 * MAX_FILTER_RANGES + 1];
  int insns = build_filter(prog, family, protocol, watched);
  struct sock_fprog fprog = {.len = (unsigned short)insns, .filter = prog};
  if (insns > 0 && setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) == 0) return 1;
  int none = 0;
  setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &none, sizeof none);
  return 0;
}

/* refilter() -> boolean: the socket filter rebuilt from the watched table, which the caller
 * has changed in place; the socket and its queue stay, so no packet is lost meanwhile. */
static napi_value js_refilter(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  reader_t *r = (reader_t *)js_poll_this(env, info, &argc, NULL);
  if (!r) return NULL;
  napi_value result;
  int filtered = r->base.fd >= 0 && attach_filter(r->base.fd, r->family, r->protocol, r->watched);
  CHECK(napi_get_boolean(env, filtered, &result));
  return result;
}

static void release(js_poll_t *p) {
  reader_t *r = (reader_t *)p;
  napi_ref refs[] = {r->buffer_ref, r->counters_ref, r->watched_ref, r->in_use_ref};
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
    if (refs[i]) napi_delete_reference(p->env, refs[i]);
}

static int port_table(napi_env env, napi_value value, const uint8_t **data, napi_ref *ref) {
  napi_typedarray_type type;
  size_t length;
  void *bytes;
  if (napi_get_typedarray_info(env, value, &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      length != 65536)
    return 0;
  *data = (const uint8_t *)bytes;
  return napi_create_reference(env, value, 1, ref) == napi_ok;
}

/* open(family: 4 | 6, protocol, watched: Uint8Array(65536), inUse: Uint8Array(65536),
 *      onRecords: (records: Buffer, count: number) => void)
 * -> { recordSize, counters: Float64Array, filtered: boolean, refilter(), close() } */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "open(family, protocol, watched, inUse, callback)");
    return NULL;
  }
  int32_t family, protocol;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_int32(env, argv[1], &protocol));
  reader_t *r = (reader_t *)calloc(1, sizeof *r);
  if (!r) return throw_errno(env, ENOMEM, "raw socket");
  r->base.env = env;
  r->base.fd = -1;
  r->base.release = release;
  r->base.shutdown = stop_timer;
  if (!port_table(env, argv[2], &r->watched, &r->watched_ref) || !port_table(env, argv[3], &r->in_use, &r->in_use_ref)) {
    release(&r->base);
    free(r);
    napi_throw_type_error(env, NULL, "watched and inUse must be Uint8Array(65536)");
    return NULL;
  }
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    int err = errno;
    release(&r->base);
    free(r);
    return throw_errno(env, err, "raw socket");
  }
  /* A deeper queue absorbs bursts; FORCE needs CAP_NET_ADMIN, the plain one is capped by rmem_max. */
  int size = 16 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  int filtered = attach_filter(fd, family == 6 ? 6 : 4, protocol, r->watched);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  /* Where each packet came in and what it was sent to: the reverse-path and local checks. */
  if (family == 6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
  else
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);

  r->base.fd = fd;
  r->family = family == 6 ? 6 : 4;
  r->protocol = protocol;
  for (int i = 0; i < BATCH; i++) {
    r->iov[i].iov_base = r->packets[i];
    r->iov[i].iov_len = CAPTURE;
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->names[i];
    r->msgs[i].msg_hdr.msg_control = r->control[i].bytes;
  }
  /* The output buffer exists before the poll starts: on_readable writes to it. */
  napi_value buffer, counters, counters_buffer, value;
  void *data;
  if (napi_create_buffer(env, (size_t)OUT_RECORDS * RECORD, &data, &buffer) != napi_ok ||
      napi_create_reference(env, buffer, 1, &r->buffer_ref) != napi_ok) {
    close(fd);
    release(&r->base);
    free(r);
    napi_throw_error(env, NULL, "kube-portsentry native: record buffer");
    return NULL;
  }
  r->out = (uint8_t *)data;
  napi_value handle = js_poll_start(env, &r->base, argv[4], "kube-portsentry:rawbatch", on_readable);
  if (handle == NULL) return NULL;
  CHECK_OWNED(napi_create_arraybuffer(env, C_COUNT * sizeof(double), &data, &counters_buffer), &r->base);
  r->counters = (double *)data;
  CHECK_OWNED(napi_create_typedarray(env, napi_float64_array, C_COUNT, counters_buffer, 0, &counters), &r->base);
  CHECK_OWNED(napi_create_reference(env, counters, 1, &r->counters_ref), &r->base);
  uv_loop_t *loop;
  CHECK_OWNED(napi_get_uv_event_loop(env, &loop), &r->base);
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  r->timer_open = 1;
  r->base.refs++;
  CHECK_OWNED(napi_create_int32(env, RECORD, &value), &r->base);
  CHECK_OWNED(napi_set_named_property(env, handle, "recordSize", value), &r->base);
  CHECK_OWNED(napi_set_named_property(env, handle, "counters", counters), &r->base);
  CHECK_OWNED(napi_get_boolean(env, filtered, &value), &r->base);
  CHECK_OWNED(napi_set_named_property(env, handle, "filtered", value), &r->base);
  CHECK_OWNED(napi_create_function(env, "refilter", NAPI_AUTO_LENGTH, js_refilter, NULL, &value), &r->base);
  CHECK_OWNED(napi_set_named_property(env, handle, "refilter", value), &r->base);
  return handle;
}

/* parse(packet: Uint8Array, length, family, protocol) -> [reason (0: parsed), port, flags, dst4]
 * The reader's parser, exposed so tests hold it to src/net/packet.ts. */
static napi_value js_parse(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_typedarray_type type;
  size_t length;
  void *bytes;
  int32_t claimed, family, protocol;
  if (argc < 4 || napi_get_typedarray_info(env, argv[0], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "parse(packet, length, family, protocol)");
    return NULL;
  }
  CHECK(napi_get_value_int32(env, argv[1], &claimed));
  CHECK(napi_get_value_int32(env, argv[2], &family));
  CHECK(napi_get_value_int32(env, argv[3], &protocol));
  unsigned len = claimed < 0 ? 0 : (unsigned)claimed;
  if (len > length) len = (unsigned)length;
  if (len > CAPTURE) len = CAPTURE; /* what the reader sees of a packet */
  uint16_t port = 0;
  uint8_t flags = 0;
  uint32_t dst4 = 0;
  int reason = parse((const uint8_t *)bytes, len, family, protocol, &port, &flags, &dst4);
  napi_value out, v;
  CHECK(napi_create_array_with_length(env, 4, &out));
  const double fields[4] = {reason, port, flags, dst4};
  for (uint32_t i = 0; i < 4; i++) {
    CHECK(napi_create_double(env, fields[i], &v));
    CHECK(napi_set_element(env, out, i, v));
  }
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, js_open, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "open", fn));
  CHECK(napi_create_function(env, "parse", NAPI_AUTO_LENGTH, js_parse, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "parse", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
