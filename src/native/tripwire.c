// Tripwire listeners for bind mode.
//
// TCP: Node's net module accepts without asking for the peer address and reads it later
// with getpeername(), which fails once the scanner has reset the connection, and a connect
// scan (nmap -sT) resets at once. accept4() hands the address over atomically, as
// PortSentry's accept() did, so the listener lives here: bind, listen, and on each
// connection accept with the address, send the banner, close, and report the address.
//
// UDP: Node's dgram gives a datagram's sender only, and its source can be forged. Read
// here with IP_PKTINFO / IPV6_PKTINFO, each datagram is reported with the address it was
// sent to (a broadcast or multicast one is no probe of this host) and the interface it
// came in on (the reverse-path check).
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <stdbool.h>
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

/* A bound socket (listening, for TCP); -1 with *err set. UDP sockets get no SO_REUSEADDR:
 * a port a real service uses fails with EADDRINUSE, and is left to it. */
static int open_socket(int family, int type, int port, int *err) {
  int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  int on = 1, off = 0;
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (type == SOCK_DGRAM) {
    /* IPv4 datagrams on the dual-stack socket come with IPV6_PKTINFO too (a mapped address). */
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
  }
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
  if (rc != 0 || (type == SOCK_STREAM && listen(fd, 511) != 0)) {
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

/* The port argument (1-65535); false, with a JS exception pending, otherwise. */
static bool port_arg(napi_env env, napi_value value, int32_t *port) {
  if (napi_get_value_int32(env, value, port) != napi_ok) {
    napi_throw_type_error(env, NULL, "port must be a number");
    return false;
  }
  if (*port < 1 || *port > 65535) {
    napi_throw_range_error(env, NULL, "port must be 1-65535");
    return false;
  }
  return true;
}

/* A dual-stack socket on the port, or an IPv4 one where the host has no IPv6. */
static int open_any_family(int type, int port, int *err) {
  int fd = open_socket(AF_INET6, type, port, err);
  if (fd < 0 && (*err == EAFNOSUPPORT || *err == EADDRNOTAVAIL)) fd = open_socket(AF_INET, type, port, err);
  return fd;
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
  if (!port_arg(env, argv[0], &port)) return NULL;
  void *banner_data;
  size_t banner_len;
  CHECK(napi_get_buffer_info(env, argv[1], &banner_data, &banner_len));

  int err = 0;
  int fd = open_any_family(SOCK_STREAM, port, &err);
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

/* Datagrams read per readable event before the loop gets a turn. */
#define UDP_BATCH 256

static void text_of(const void *addr, int family, char *text, size_t size) {
  text[0] = '\0';
  inet_ntop(family, addr, text, (socklen_t)size);
}

static void on_datagram(uv_poll_t *handle, int status, int events) {
  (void)events;
  js_poll_t *p = (js_poll_t *)handle->data;
  if (status < 0 || p->closing) return;
  for (int i = 0; i < UDP_BATCH && !p->closing; i++) {
    struct sockaddr_storage peer;
    char payload[1]; /* the content is not read: MSG_TRUNC drops the rest */
    struct iovec iov = {.iov_base = payload, .iov_len = sizeof payload};
    union {
      struct cmsghdr align;
      uint8_t bytes[CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
    } control;
    struct msghdr m = {.msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = control.bytes, .msg_controllen = sizeof control.bytes};
    ssize_t n = recvmsg(p->fd, &m, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      return; /* EAGAIN: queue drained */
    }
    char source[INET6_ADDRSTRLEN] = "", destination[INET6_ADDRSTRLEN] = "";
    uint32_t ifindex = 0;
    if (peer.ss_family == AF_INET6) text_of(&((struct sockaddr_in6 *)&peer)->sin6_addr, AF_INET6, source, sizeof source);
    else if (peer.ss_family == AF_INET) text_of(&((struct sockaddr_in *)&peer)->sin_addr, AF_INET, source, sizeof source);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        struct in6_pktinfo info;
        memcpy(&info, CMSG_DATA(c), sizeof info);
        ifindex = info.ipi6_ifindex;
        text_of(&info.ipi6_addr, AF_INET6, destination, sizeof destination);
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo info;
        memcpy(&info, CMSG_DATA(c), sizeof info);
        ifindex = (uint32_t)info.ipi_ifindex;
        text_of(&info.ipi_addr, AF_INET, destination, sizeof destination); /* the header's, not the route's */
      }
    }
    if (!source[0]) continue;
    napi_env env = p->env;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value argv[3];
    if (napi_create_string_utf8(env, source, NAPI_AUTO_LENGTH, &argv[0]) == napi_ok &&
        napi_create_string_utf8(env, destination, NAPI_AUTO_LENGTH, &argv[1]) == napi_ok &&
        napi_create_uint32(env, ifindex, &argv[2]) == napi_ok)
      js_poll_call(p, 3, argv);
    napi_close_handle_scope(env, scope);
  }
}

/* listenUdp(port: number, onDatagram: (source: string, destination: string, ifindex: number) => void): { close(): void }
 * destination is "" and ifindex 0 when the kernel did not say. */
static napi_value js_listen_udp(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "listenUdp(port, callback)");
    return NULL;
  }
  int32_t port;
  if (!port_arg(env, argv[0], &port)) return NULL;
  int err = 0;
  int fd = open_any_family(SOCK_DGRAM, port, &err);
  if (fd < 0) return throw_errno(env, err, "listenUdp");
  js_poll_t *p = (js_poll_t *)calloc(1, sizeof *p);
  if (!p) {
    close(fd);
    return throw_errno(env, ENOMEM, "listenUdp");
  }
  p->fd = fd;
  return js_poll_start(env, p, argv[1], "kube-portsentry:udp-tripwire", on_datagram);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  CHECK(napi_create_function(env, "listen", NAPI_AUTO_LENGTH, js_listen, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "listen", fn));
  CHECK(napi_create_function(env, "listenUdp", NAPI_AUTO_LENGTH, js_listen_udp, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "listenUdp", fn));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
