// Shared by the addons: a file descriptor watched by the event loop (uv_poll) whose
// events are handed to a JavaScript callback, a close() function for JavaScript, and
// errors thrown with an errno code. An owner struct starts with a js_poll_t.
#ifndef KPS_JS_POLL_H
#define KPS_JS_POLL_H

#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define CHECK(call)                                                       \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error(env, NULL, "kube-portsentry native: " #call);      \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

typedef struct js_poll {
  uv_poll_t poll;
  int fd;
  int closing;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  /* Releases what the owner holds besides the fd, before the owner is freed. */
  void (*release)(struct js_poll *self);
} js_poll_t;

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  const char *name = err == EADDRINUSE ? "EADDRINUSE"
                     : err == EACCES || err == EPERM ? "EPERM"
                     : err == EAFNOSUPPORT ? "EAFNOSUPPORT"
                     : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                                             : "EIO";
  napi_value code, msg, error;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

/* Calls the JavaScript callback; the caller holds a handle scope for `argv`. make_callback
 * (with an object receiver) runs the microtask queue afterwards, as an event callback should. */
static void js_poll_call(js_poll_t *p, size_t argc, const napi_value *argv) {
  napi_value fn, recv, result;
  if (napi_get_reference_value(p->env, p->callback, &fn) != napi_ok || fn == NULL) return;
  if (napi_get_global(p->env, &recv) != napi_ok) return;
  if (napi_make_callback(p->env, p->context, recv, fn, argc, argv, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(p->env, &exception);
    napi_fatal_exception(p->env, exception);
  }
}

static void js_poll_closed(uv_handle_t *handle) {
  js_poll_t *p = (js_poll_t *)handle->data;
  close(p->fd);
  if (p->release) p->release(p);
  free(p);
}

static napi_value js_poll_close(napi_env env, napi_callback_info info) {
  js_poll_t *p;
  size_t argc = 0;
  CHECK(napi_get_cb_info(env, info, &argc, NULL, NULL, (void **)&p));
  if (p->closing) return NULL;
  p->closing = 1;
  napi_delete_reference(env, p->callback);
  napi_async_destroy(env, p->context);
  uv_poll_stop(&p->poll);
  uv_close((uv_handle_t *)&p->poll, js_poll_closed);
  return NULL;
}

/* Starts watching p->fd for reads; returns the JavaScript handle object with close(). */
static napi_value js_poll_start(napi_env env, js_poll_t *p, napi_value callback, const char *name, uv_poll_cb on_readable) {
  napi_value resource_name, handle, close_fn;
  uv_loop_t *loop;
  p->env = env;
  CHECK(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name));
  CHECK(napi_async_init(env, NULL, resource_name, &p->context));
  CHECK(napi_create_reference(env, callback, 1, &p->callback));
  CHECK(napi_get_uv_event_loop(env, &loop));
  uv_poll_init_socket(loop, &p->poll, p->fd);
  p->poll.data = p;
  uv_poll_start(&p->poll, UV_READABLE, on_readable);
  CHECK(napi_create_object(env, &handle));
  CHECK(napi_create_function(env, "close", NAPI_AUTO_LENGTH, js_poll_close, p, &close_fn));
  CHECK(napi_set_named_property(env, handle, "close", close_fn));
  return handle;
}

#endif
