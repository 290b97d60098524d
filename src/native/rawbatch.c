// Raw-socket reader for the stealth detectors, batched: one wake-up drains the socket
// with recvmmsg(), up to BATCH packets per call, into one shared buffer of fixed-size
// records, and JavaScript gets one callback per batch. raw-socket reads one packet per
// event-loop turn, which made the system calls, not the detection, the cost of a packet
// (see bench/detector.ts).
//
// Record layout (RECORD bytes each): u16 captured length (host order), u8 family (4/6),
// u8 unused, 16 bytes source address (IPv4 in the first 4), then CAPTURE bytes of packet:
// IPv4 with its header, IPv6 from the transport header (the kernel strips the IPv6 header
// for raw sockets).
#define _GNU_SOURCE /* recvmmsg */
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "js_poll.h"

#define BATCH 64
#define CAPTURE 128
#define RECORD (4 + 16 + CAPTURE)
#define MAX_BATCHES_PER_WAKEUP 16 /* then yield to the event loop */

typedef struct {
  js_poll_t base;
  int family;
  napi_ref buffer_ref;
  uint8_t *out; /* the shared buffer's memory: BATCH records */
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage names[BATCH];
  uint8_t packets[BATCH][CAPTURE];
} reader_t;

static void deliver(reader_t *r, int count) {
  napi_env env = r->base.env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value args[2];
  if (napi_get_reference_value(env, r->buffer_ref, &args[0]) == napi_ok && napi_create_int32(env, count, &args[1]) == napi_ok)
    js_poll_call(&r->base, 2, args);
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  reader_t *r = (reader_t *)handle->data;
  if (status < 0 || r->base.closing) return;
  for (int round = 0; round < MAX_BATCHES_PER_WAKEUP && !r->base.closing; round++) {
    for (int i = 0; i < BATCH; i++) r->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    int n = recvmmsg(r->base.fd, r->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return; /* EAGAIN: drained */
    for (int i = 0; i < n; i++) {
      uint8_t *rec = r->out + (size_t)i * RECORD;
      unsigned len = r->msgs[i].msg_len > CAPTURE ? CAPTURE : r->msgs[i].msg_len;
      rec[0] = (uint8_t)(len & 0xff);
      rec[1] = (uint8_t)(len >> 8);
      rec[2] = (uint8_t)r->family;
      rec[3] = 0;
      memset(rec + 4, 0, 16);
      if (r->names[i].ss_family == AF_INET6)
        memcpy(rec + 4, &((struct sockaddr_in6 *)&r->names[i])->sin6_addr, 16);
      else if (r->names[i].ss_family == AF_INET)
        memcpy(rec + 4, &((struct sockaddr_in *)&r->names[i])->sin_addr, 4);
      memcpy(rec + 20, r->packets[i], len);
    }
    deliver(r, n);
    if (n < BATCH) return;
  }
}

static void release(js_poll_t *p) {
  reader_t *r = (reader_t *)p;
  napi_delete_reference(p->env, r->buffer_ref);
}

/* open(family: 4 | 6, protocol: number, onBatch: (records: Buffer, count: number) => void) */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "open(family, protocol, callback)");
    return NULL;
  }
  int32_t family, protocol;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_int32(env, argv[1], &protocol));
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) return throw_errno(env, errno, "raw socket");
  /* A deeper queue absorbs bursts; FORCE needs CAP_NET_ADMIN, the plain one is capped by rmem_max. */
  int size = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);

  reader_t *r = (reader_t *)calloc(1, sizeof *r);
  if (!r) {
    close(fd);
    return throw_errno(env, ENOMEM, "raw socket");
  }
  r->base.fd = fd;
  r->base.release = release;
  r->family = family == 6 ? 6 : 4;
  for (int i = 0; i < BATCH; i++) {
    r->iov[i].iov_base = r->packets[i];
    r->iov[i].iov_len = CAPTURE;
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->names[i];
  }
  napi_value buffer, record_size;
  void *data;
  CHECK(napi_create_buffer(env, (size_t)BATCH * RECORD, &data, &buffer));
  r->out = (uint8_t *)data;
  CHECK(napi_create_reference(env, buffer, 1, &r->buffer_ref));
  napi_value handle = js_poll_start(env, &r->base, argv[2], "kube-portsentry:rawbatch", on_readable);
  if (handle == NULL) return NULL;
  CHECK(napi_create_int32(env, RECORD, &record_size));
  CHECK(napi_set_named_property(env, handle, "recordSize", record_size));
  return handle;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, js_open, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "open", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
