// A netlink socket for the firewall backends: JavaScript builds the messages (nf_tables
// set elements, ipset entries) and reads the acks; this file only sends and receives.
// Spawning `nft` per block cost 2.6 ms at best and, for interval sets, grew with the set
// (nft loads every element to check overlaps); the kernel answers a netlink batch in tens
// of microseconds whatever the set holds.
//
// Requests are synchronous: the kernel processes a netfilter batch inside sendmsg() and
// has queued its acks by the time it returns, so receive() finds them at once; its
// timeout is only a guard against a kernel that never answers. A socket opened with a
// callback (the nflog listener) also hands every datagram the kernel sends on its own to
// JavaScript, from the event loop.
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include "js_poll.h"

#define RECV_SIZE (64 * 1024)

typedef struct {
  js_poll_t base; /* base.fd is the socket; polled only with a callback */
  uint8_t buf[RECV_SIZE];
} nl_t;

static nl_t *self(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  nl_t *nl = (nl_t *)js_poll_this(env, info, argc, argv);
  if (nl && (nl->base.fd < 0 || nl->base.closing)) {
    napi_throw_error(env, "EBADF", "netlink socket is closed");
    return NULL;
  }
  return nl;
}

/* send(message: Buffer): one datagram, all of it or an error. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  nl_t *nl = self(env, info, &argc, argv);
  if (!nl) return NULL;
  void *data;
  size_t length;
  CHECK(napi_get_buffer_info(env, argv[0], &data, &length));
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t n;
  do n = sendto(nl->base.fd, data, length, 0, (struct sockaddr *)&kernel, sizeof kernel);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "netlink send");
  return NULL;
}

/* receive(timeoutMs): the next datagram (a copy), or null when none came in time. */
static napi_value js_receive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  nl_t *nl = self(env, info, &argc, argv);
  if (!nl) return NULL;
  int32_t timeout = 0;
  if (argc > 0) CHECK(napi_get_value_int32(env, argv[0], &timeout));
  struct pollfd p = {.fd = nl->base.fd, .events = POLLIN};
  int ready;
  do ready = poll(&p, 1, timeout);
  while (ready < 0 && errno == EINTR);
  if (ready < 0) return throw_errno(env, errno, "netlink poll");
  if (ready == 0) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  ssize_t n;
  do n = recv(nl->base.fd, nl->buf, sizeof nl->buf, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  /* ENOBUFS: the kernel dropped replies; the caller fails what it waits for. */
  if (n < 0) return throw_errno(env, errno, "netlink receive");
  CHECK(napi_create_buffer_copy(env, (size_t)n, nl->buf, NULL, &result));
  return result;
}

/* A listening socket's datagrams, as they come; null when the kernel dropped some (ENOBUFS). */
static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  nl_t *nl = (nl_t *)handle->data;
  if (status < 0) return;
  for (int i = 0; i < 64 && !nl->base.closing; i++) {
    ssize_t n = recv(nl->base.fd, nl->buf, sizeof nl->buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != ENOBUFS) return; /* EAGAIN: drained */
    napi_env env = nl->base.env;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value arg;
    if (n < 0 ? napi_get_null(env, &arg) == napi_ok : napi_create_buffer_copy(env, (size_t)n, nl->buf, NULL, &arg) == napi_ok)
      js_poll_call(&nl->base, 1, &arg);
    napi_close_handle_scope(env, scope);
  }
}

/* open(protocol, onDatagram?): { send, receive, close } on a socket bound to a
 * kernel-chosen port id; with onDatagram, unsolicited datagrams go to it. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t protocol;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &protocol) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(protocol)");
    return NULL;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return throw_errno(env, errno, "netlink socket");
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "netlink bind");
  }
  /* Acks without a copy of the request; error strings from the kernel where it has them. */
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  /* A thousand additions make a datagram of 50-100 KB, and ipset acks each of them (about
   * 1 KB of buffer apiece): room beyond the defaults. */
  int size = 1 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);

  napi_valuetype callback_type = napi_undefined;
  if (argc > 1 && napi_typeof(env, argv[1], &callback_type) != napi_ok) callback_type = napi_undefined;
  if (callback_type == napi_function) {
    int big = 4 << 20; /* room for a burst of log messages */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) != 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  }
  nl_t *nl = (nl_t *)calloc(1, sizeof *nl);
  if (!nl) {
    close(fd);
    return throw_errno(env, ENOMEM, "netlink socket");
  }
  nl->base.fd = fd;
  napi_value handle = js_poll_start(env, &nl->base, callback_type == napi_function ? argv[1] : NULL, "kube-portsentry:netlink", on_readable);
  if (!handle) return NULL;
  napi_value fn;
  CHECK_OWNED(napi_create_function(env, "send", NAPI_AUTO_LENGTH, js_send, NULL, &fn), &nl->base);
  CHECK_OWNED(napi_set_named_property(env, handle, "send", fn), &nl->base);
  CHECK_OWNED(napi_create_function(env, "receive", NAPI_AUTO_LENGTH, js_receive, NULL, &fn), &nl->base);
  CHECK_OWNED(napi_set_named_property(env, handle, "receive", fn), &nl->base);
  return handle;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, js_open, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "open", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
