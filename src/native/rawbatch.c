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
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define BATCH 64
#define CAPTURE 128
#define RECORD (4 + 16 + CAPTURE)
#define MAX_BATCHES_PER_WAKEUP 16 /* then yield to the event loop */

typedef struct {
  uv_poll_t poll;
  int fd;
  int family;
  napi_env env;
  napi_ref callback;
  napi_ref buffer_ref;
  napi_async_context context;
  uint8_t *out; /* the shared buffer's memory: BATCH records */
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage names[BATCH];
  uint8_t packets[BATCH][CAPTURE];
  int closing;
} reader_t;

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, NULL, "rawbatch: N-API call failed: " #call);  \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_value msg, code, error;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, err == EPERM || err == EACCES ? "EPERM" : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

static void deliver(reader_t *r, int count) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value fn, recv, args[2], result;
  if (napi_get_reference_value(env, r->callback, &fn) == napi_ok && fn != NULL &&
      napi_get_reference_value(env, r->buffer_ref, &args[0]) == napi_ok &&
      napi_create_int32(env, count, &args[1]) == napi_ok && napi_get_global(env, &recv) == napi_ok) {
    if (napi_make_callback(env, r->context, recv, fn, 2, args, &result) == napi_pending_exception) {
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
      napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  reader_t *r = (reader_t *)handle->data;
  if (status < 0 || r->closing) return;
  for (int round = 0; round < MAX_BATCHES_PER_WAKEUP && !r->closing; round++) {
    for (int i = 0; i < BATCH; i++) r->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    int n = recvmmsg(r->fd, r->msgs, BATCH, MSG_DONTWAIT, NULL);
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

static void on_closed(uv_handle_t *handle) {
  reader_t *r = (reader_t *)handle->data;
  close(r->fd);
  free(r);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  reader_t *r;
  size_t argc = 0;
  CHECK(napi_get_cb_info(env, info, &argc, NULL, NULL, (void **)&r));
  if (r->closing) return NULL;
  r->closing = 1;
  napi_delete_reference(env, r->callback);
  napi_delete_reference(env, r->buffer_ref);
  napi_async_destroy(env, r->context);
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *)&r->poll, on_closed);
  return NULL;
}

/* open(family: 4 | 6, protocol: number, onBatch: (records: Buffer, count: number) => void) */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
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
  r->fd = fd;
  r->family = family == 6 ? 6 : 4;
  r->env = env;
  for (int i = 0; i < BATCH; i++) {
    r->iov[i].iov_base = r->packets[i];
    r->iov[i].iov_len = CAPTURE;
    r->msgs[i].msg_hdr.msg_iov = &r->iov[i];
    r->msgs[i].msg_hdr.msg_iovlen = 1;
    r->msgs[i].msg_hdr.msg_name = &r->names[i];
  }
  napi_value buffer;
  void *data;
  CHECK(napi_create_buffer(env, (size_t)BATCH * RECORD, &data, &buffer));
  r->out = (uint8_t *)data;
  CHECK(napi_create_reference(env, buffer, 1, &r->buffer_ref));
  CHECK(napi_create_reference(env, argv[2], 1, &r->callback));
  napi_value resource_name;
  CHECK(napi_create_string_utf8(env, "kube-portsentry:rawbatch", NAPI_AUTO_LENGTH, &resource_name));
  CHECK(napi_async_init(env, NULL, resource_name, &r->context));

  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  uv_poll_init_socket(loop, &r->poll, fd);
  r->poll.data = r;
  uv_poll_start(&r->poll, UV_READABLE, on_readable);

  napi_value handle, close_fn, record_size;
  CHECK(napi_create_object(env, &handle));
  CHECK(napi_create_function(env, "close", NAPI_AUTO_LENGTH, js_close, r, &close_fn));
  CHECK(napi_set_named_property(env, handle, "close", close_fn));
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
