// TCP tripwire listener for bind mode. Node's net module accepts without asking for the
// peer address and reads it later with getpeername(), which fails once the scanner has
// reset the connection, and a connect scan (nmap -sT) resets at once. accept4() hands
// the address over atomically, as PortSentry's accept() did, so the listener lives here:
// bind, listen, and on each connection accept with the address, send the banner, close,
// and report the address to JavaScript.
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "js_poll.h"

/* Out of descriptors with no spare to make room: accepting again after this pause
 * instead of at once, since the pending connection keeps the socket readable (a spin). */
#define NO_DESCRIPTOR_PAUSE_MS 100

typedef struct {
  js_poll_t base;
  uv_timer_t pause; /* resumes accepting after NO_DESCRIPTOR_PAUSE_MS */
  int pause_open;
  int spare_fd; /* closed to make room for an accept when the process is out of descriptors */
  char *banner;
  size_t banner_len;
} listener_t;

static int open_socket(int family, int port, int *err) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  int rc;
  if (family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off); /* one socket for v4 and v6 */
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons((uint16_t)port);
    a.sin6_addr = in6addr_any;
    rc = bind(fd, (struct sockaddr *)&a, sizeof a);
  } else {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    rc = bind(fd, (struct sockaddr *)&a, sizeof a);
  }
  if (rc != 0 || listen(fd, 511) != 0) {
    *err = errno;
    close(fd);
    return -1;
  }
  return fd;
}

static void report(listener_t *l, const char *address) {
  napi_env env = l->base.env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value arg;
  if (napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &arg) == napi_ok) js_poll_call(&l->base, 1, &arg);
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events);

static void resume(uv_timer_t *timer) {
  listener_t *l = (listener_t *)timer->data;
  if (l->base.closing) return;
  if (l->spare_fd < 0) l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  uv_poll_start(&l->base.poll, UV_READABLE, on_readable);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  listener_t *l = (listener_t *)handle->data;
  if (status < 0 || l->base.closing) return;
  for (int i = 0; i < 256 && !l->base.closing; i++) {
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int c = accept4(l->base.fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int err = c < 0 ? errno : 0;
    if ((err == EMFILE || err == ENFILE) && l->spare_fd >= 0) {
      /* out of descriptors: the spare makes room to take the connection off the queue */
      close(l->spare_fd);
      l->spare_fd = -1;
      len = sizeof peer;
      c = accept4(l->base.fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      err = c < 0 ? errno : 0;
    }
    if (err == EMFILE || err == ENFILE) {
      uv_poll_stop(&l->base.poll);
      uv_timer_start(&l->pause, resume, NO_DESCRIPTOR_PAUSE_MS, 0);
      return;
    }
    if (c < 0) {
      if (err == EINTR || err == ECONNABORTED) continue;
      return; /* EAGAIN: queue drained */
    }
    char text[INET6_ADDRSTRLEN] = "";
    if (peer.ss_family == AF_INET6)
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, text, sizeof text);
    else if (peer.ss_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, text, sizeof text);
    if (l->banner_len) {
      ssize_t sent = send(c, l->banner, l->banner_len, MSG_DONTWAIT | MSG_NOSIGNAL);
      (void)sent; /* a scanner that reset already gets nothing: nothing to do */
    }
    close(c);
    if (l->spare_fd < 0) l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (text[0]) report(l, text);
  }
}

/* On close: the spare descriptor goes with the socket, the pause timer with the poll. */
static void stop_listener(js_poll_t *p) {
  listener_t *l = (listener_t *)p;
  if (l->spare_fd >= 0) close(l->spare_fd);
  l->spare_fd = -1;
  if (!l->pause_open) return;
  uv_timer_stop(&l->pause);
  uv_close((uv_handle_t *)&l->pause, js_poll_handle_closed);
  l->pause_open = 0;
}

static void release(js_poll_t *p) {
  listener_t *l = (listener_t *)p;
  if (l->spare_fd >= 0) close(l->spare_fd);
  free(l->banner);
}

/* listen(port: number, banner: Buffer, onConnection: (address: string) => void): { close(): void } */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "listen(port, banner, callback)");
    return NULL;
  }
  int32_t port;
  CHECK(napi_get_value_int32(env, argv[0], &port));
  if (port < 1 || port > 65535) {
    napi_throw_range_error(env, NULL, "port must be 1-65535");
    return NULL;
  }
  void *banner_data;
  size_t banner_len;
  CHECK(napi_get_buffer_info(env, argv[1], &banner_data, &banner_len));

  int err = 0;
  int fd = open_socket(AF_INET6, port, &err);
  if (fd < 0 && (err == EAFNOSUPPORT || err == EADDRNOTAVAIL)) fd = open_socket(AF_INET, port, &err);
  if (fd < 0) return throw_errno(env, err, "listen");

  listener_t *l = (listener_t *)calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    return throw_errno(env, ENOMEM, "listen");
  }
  l->base.fd = fd;
  l->base.release = release;
  l->base.shutdown = stop_listener;
  l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (banner_len && (l->banner = (char *)malloc(banner_len))) {
    memcpy(l->banner, banner_data, banner_len);
    l->banner_len = banner_len;
  }
  napi_value handle = js_poll_start(env, &l->base, argv[2], "kube-portsentry:tripwire", on_readable);
  if (!handle) return NULL;
  uv_loop_t *loop;
  CHECK_OWNED(napi_get_uv_event_loop(env, &loop), &l->base);
  uv_timer_init(loop, &l->pause);
  l->pause.data = l;
  l->pause_open = 1;
  l->base.refs++;
  return handle;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "listen", NAPI_AUTO_LENGTH, js_listen, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "listen", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
