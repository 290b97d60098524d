// A netlink socket for the firewall backends: JavaScript builds the messages (nf_tables
// set elements, ipset entries) and reads the acks; this file only sends and receives.
// Spawning `nft` per block cost 2.6 ms at best and, for interval sets, grew with the set
// (nft loads every element to check overlaps); the kernel answers a netlink batch in tens
// of microseconds whatever the set holds.
//
// Calls are synchronous: the kernel processes a netfilter batch inside sendmsg() and has
// queued its acks by the time it returns, so receive() finds them at once; its timeout is
// only a guard against a kernel that never answers.
#define NAPI_VERSION 8
#include <errno.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RECV_SIZE (64 * 1024)

#define CHECK(call)                                                  \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(env, NULL, "kube-portsentry native: " #call); \
      return NULL;                                                   \
    }                                                                \
  } while (0)

typedef struct {
  int fd;
  uint8_t buf[RECV_SIZE];
} nl_t;

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_value code, msg, error;
  napi_create_string_utf8(env, err == EPERM || err == EACCES ? "EPERM" : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

static nl_t *self(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  nl_t *nl = NULL;
  if (napi_get_cb_info(env, info, argc, argv, NULL, (void **)&nl) != napi_ok) return NULL;
  if (nl->fd < 0) {
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
  do n = sendto(nl->fd, data, length, 0, (struct sockaddr *)&kernel, sizeof kernel);
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
  struct pollfd p = {.fd = nl->fd, .events = POLLIN};
  int ready;
  do ready = poll(&p, 1, timeout);
  while (ready < 0 && errno == EINTR);
  if (ready < 0) return throw_errno(env, errno, "netlink poll");
  if (ready == 0) {
    CHECK(napi_get_null(env, &result));
    return result;
  }
  ssize_t n;
  do n = recv(nl->fd, nl->buf, sizeof nl->buf, MSG_DONTWAIT);
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

static napi_value js_close(napi_env env, napi_callback_info info) {
  nl_t *nl = NULL;
  size_t argc = 0;
  CHECK(napi_get_cb_info(env, info, &argc, NULL, NULL, (void **)&nl));
  if (nl->fd >= 0) close(nl->fd);
  nl->fd = -1;
  return NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  nl_t *nl = (nl_t *)data;
  if (nl->fd >= 0) close(nl->fd);
  free(nl);
}

/* open(protocol): { send, receive, close } on a socket bound to a kernel-chosen port id. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
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

  nl_t *nl = (nl_t *)malloc(sizeof *nl);
  if (!nl) {
    close(fd);
    return throw_errno(env, ENOMEM, "netlink socket");
  }
  nl->fd = fd;
  napi_value handle, fn;
  CHECK(napi_create_object(env, &handle));
  if (napi_wrap(env, handle, nl, finalize, NULL, NULL) != napi_ok) {
    close(fd);
    free(nl);
    napi_throw_error(env, NULL, "kube-portsentry native: napi_wrap");
    return NULL;
  }
  CHECK(napi_create_function(env, "send", NAPI_AUTO_LENGTH, js_send, nl, &fn));
  CHECK(napi_set_named_property(env, handle, "send", fn));
  CHECK(napi_create_function(env, "receive", NAPI_AUTO_LENGTH, js_receive, nl, &fn));
  CHECK(napi_set_named_property(env, handle, "receive", fn));
  CHECK(napi_create_function(env, "close", NAPI_AUTO_LENGTH, js_close, nl, &fn));
  CHECK(napi_set_named_property(env, handle, "close", fn));
  return handle;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "open", NAPI_AUTO_LENGTH, js_open, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "open", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
