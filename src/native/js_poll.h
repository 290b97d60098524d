// Shared by the addons: a file descriptor watched by the event loop (uv_poll) whose
// events are handed to a JavaScript callback, a JavaScript handle object with close(),
// and errors thrown with an errno code. An owner struct starts with a js_poll_t.
//
// Ownership: the struct is freed when its last holder lets go. Holders are the JavaScript
// handle (napi_wrap, until garbage collected) and each libuv handle (until its close
// callback), so a close() called twice, or after libuv is done, still finds the struct.
// close() closes the descriptor before it returns: a port is free to bind again at once.
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

/* CHECK for code that owns a started js_poll_t: a failure closes it before throwing (the
 * JavaScript handle's finalizer frees it). */
#define CHECK_OWNED(call, p)                                              \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      js_poll_shutdown(env, (p));                                         \
      napi_throw_error(env, NULL, "kube-portsentry native: " #call);      \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

typedef struct js_poll {
  uv_poll_t poll;
  int fd;
  int closing;
  int polling; /* poll is initialised and holds a reference */
  int refs;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  /* Releases what the owner holds besides the fd, before the owner is freed. */
  void (*release)(struct js_poll *self);
  /* Stops what the owner runs besides the poll (timers), on close. */
  void (*shutdown)(struct js_poll *self);
} js_poll_t;

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char text[256];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  const char *name = err == EADDRINUSE ? "EADDRINUSE"
                     : err == EACCES || err == EPERM ? "EPERM"
                     : err == EAFNOSUPPORT ? "EAFNOSUPPORT"
                     : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                     : err == EBADF ? "EBADF"
                                             : "EIO";
  napi_value code, msg, error;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

static void js_poll_unref(js_poll_t *p) {
  if (--p->refs > 0) return;
  if (p->fd >= 0) close(p->fd);
  if (p->release) p->release(p);
  free(p);
}

/* Close callback of every libuv handle an owner holds: each held one reference. */
static void js_poll_handle_closed(uv_handle_t *handle) {
  js_poll_unref((js_poll_t *)handle->data);
}

static void js_poll_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  js_poll_unref((js_poll_t *)data);
}

/* Stops watching and closes the descriptor now; idempotent. */
static void js_poll_shutdown(napi_env env, js_poll_t *p) {
  if (p->closing) return;
  p->closing = 1;
  if (p->callback) napi_delete_reference(env, p->callback);
  if (p->context) napi_async_destroy(env, p->context);
  p->callback = NULL;
  p->context = NULL;
  if (p->shutdown) p->shutdown(p);
  if (p->polling) {
    /* uv_close drops the descriptor from epoll before it returns; only its callback waits. */
    uv_close((uv_handle_t *)&p->poll, js_poll_handle_closed);
    p->polling = 0;
  }
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
}

/* The owner behind `this` of a method call, or NULL with a TypeError thrown. */
static js_poll_t *js_poll_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *p = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok || napi_unwrap(env, self, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "kube-portsentry native: called on something that is not a handle");
    return NULL;
  }
  return (js_poll_t *)p;
}

static napi_value js_poll_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  js_poll_t *p = js_poll_this(env, info, &argc, NULL);
  if (p) js_poll_shutdown(env, p);
  return NULL;
}

/* Calls the JavaScript callback; the caller holds a handle scope for `argv`. make_callback
 * (with an object receiver) runs the microtask queue afterwards, as an event callback should. */
static void js_poll_call(js_poll_t *p, size_t argc, const napi_value *argv) {
  napi_value fn, recv, result;
  if (p->closing || !p->callback) return;
  if (napi_get_reference_value(p->env, p->callback, &fn) != napi_ok || fn == NULL) return;
  if (napi_get_global(p->env, &recv) != napi_ok) return;
  if (napi_make_callback(p->env, p->context, recv, fn, argc, argv, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(p->env, &exception);
    napi_fatal_exception(p->env, exception);
  }
}

/*
 * Takes ownership of `p` (calloc'ed, p->fd open) and returns its JavaScript handle with
 * close(); with a callback, p->fd is watched for reads. On failure it throws and returns
 * NULL, and `p` and its descriptor are gone: the caller cleans up nothing.
 */
static napi_value js_poll_start(napi_env env, js_poll_t *p, napi_value callback, const char *name, uv_poll_cb on_readable) {
  napi_value handle, close_fn;
  p->env = env;
  if (napi_create_object(env, &handle) != napi_ok || napi_wrap(env, handle, p, js_poll_finalize, NULL, NULL) != napi_ok) {
    p->refs = 1;
    js_poll_unref(p);
    napi_throw_error(env, NULL, "kube-portsentry native: handle");
    return NULL;
  }
  p->refs = 1; /* the handle's; its finalizer frees p from here on */
  CHECK_OWNED(napi_create_function(env, "close", NAPI_AUTO_LENGTH, js_poll_close, NULL, &close_fn), p);
  CHECK_OWNED(napi_set_named_property(env, handle, "close", close_fn), p);
  if (callback == NULL) return handle;
  napi_value resource_name;
  uv_loop_t *loop;
  CHECK_OWNED(napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name), p);
  CHECK_OWNED(napi_async_init(env, NULL, resource_name, &p->context), p);
  CHECK_OWNED(napi_create_reference(env, callback, 1, &p->callback), p);
  CHECK_OWNED(napi_get_uv_event_loop(env, &loop), p);
  if (uv_poll_init_socket(loop, &p->poll, p->fd) != 0) {
    js_poll_shutdown(env, p);
    return throw_errno(env, EBADF, name);
  }
  p->poll.data = p;
  p->polling = 1;
  p->refs++;
  uv_poll_start(&p->poll, UV_READABLE, on_readable);
  return handle;
}

#endif
