/*
 * periscope native binding: a thin N-API layer over the system libbpf. It opens, configures, loads
 * and attaches BPF objects, operates on maps (single and batch) and drains ring buffers into one
 * buffer per batch. It makes no decisions: which program to load, which alternative to take, how to
 * decode a record are all TypeScript's (src/kernel). Errors become JS errors that carry the errno,
 * its name and libbpf's own last messages (for a load failure, the verifier log).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- libbpf's messages: the tail of what it printed, attached to the next error ---------------- */

#define LOG_SIZE 16384
static char libbpf_log[LOG_SIZE];
static size_t libbpf_log_len;

/* Appends text to the log, keeping the newest: the oldest goes when full (a verifier log's reason for
 * refusing a program is at its end). */
static void log_append(const char *text, size_t n)
{
	if (n >= LOG_SIZE / 2) {
		text += n - (LOG_SIZE / 2 - 1);
		n = LOG_SIZE / 2 - 1;
	}
	if (libbpf_log_len + n >= LOG_SIZE) {
		size_t keep = LOG_SIZE / 2 - n;
		if (keep > libbpf_log_len)
			keep = libbpf_log_len;
		memmove(libbpf_log, libbpf_log + libbpf_log_len - keep, keep);
		libbpf_log_len = keep;
	}
	memcpy(libbpf_log + libbpf_log_len, text, n);
	libbpf_log_len += n;
	libbpf_log[libbpf_log_len] = 0;
}

static int collect_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[2048];
	va_list again;
	int n;

	if (level == LIBBPF_DEBUG)
		return 0;
	va_copy(again, ap);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n > 0 && (size_t)n < sizeof(line)) {
		log_append(line, n);
	} else if (n > 0) {
		/* a program's whole verifier log comes in one message: format it whole, keep its end */
		char *big = malloc((size_t)n + 1);
		if (big) {
			vsnprintf(big, (size_t)n + 1, fmt, again);
			log_append(big, n);
			free(big);
		} else {
			log_append(line, sizeof(line) - 1);
		}
	}
	va_end(again);
	return 0;
}

static void clear_log(void)
{
	libbpf_log_len = 0;
	libbpf_log[0] = 0;
}

/* ---- helpers ------------------------------------------------------------------------------------ */

#define CHECK(call)                                                                                  \
	do {                                                                                         \
		if ((call) != napi_ok)                                                               \
			return throw_napi(env, #call);                                               \
	} while (0)

static napi_value throw_napi(napi_env env, const char *what)
{
	const napi_extended_error_info *info = NULL;
	bool pending = false;

	napi_is_exception_pending(env, &pending);
	if (!pending) {
		napi_get_last_error_info(env, &info);
		char msg[512];
		snprintf(msg, sizeof(msg), "native: %s failed: %s", what,
			 info && info->error_message ? info->error_message : "unknown N-API error");
		napi_throw_type_error(env, "ERR_NATIVE_ARG", msg);
	}
	return NULL;
}

/* Throws an Error{message, code: 'E...', errno, libbpfLog} for a failed call; err is a positive errno. */
static napi_value throw_errno(napi_env env, int err, const char *what)
{
	char msg[1024];
	const char *name;
	napi_value error, message, code, errno_v, log;

	if (err < 0)
		err = -err;
	/* 524 is the kernel's internal ENOTSUPP, which leaks to user space from BPF attach paths */
	name = err == 524 ? "ENOTSUPP" : strerrorname_np(err);
	snprintf(msg, sizeof(msg), "%s: %s (%s)", what, err == 524 ? "Operation not supported" : strerror(err),
		 name ? name : "?");
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
	napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
	napi_create_error(env, code, message, &error);
	napi_create_int32(env, err, &errno_v);
	napi_set_named_property(env, error, "errno", errno_v);
	napi_create_string_utf8(env, libbpf_log, libbpf_log_len, &log);
	napi_set_named_property(env, error, "libbpfLog", log);
	napi_throw(env, error);
	clear_log();
	return NULL;
}

static napi_value undefined(napi_env env)
{
	napi_value u;
	napi_get_undefined(env, &u);
	return u;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
		napi_throw_type_error(env, "ERR_NATIVE_ARG", "native: too few arguments");
		return -1;
	}
	return 0;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t size)
{
	size_t len;
	if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok) {
		napi_throw_type_error(env, "ERR_NATIVE_ARG", "native: expected a string");
		return -1;
	}
	return 0;
}

static int get_i64(napi_env env, napi_value v, int64_t *out)
{
	if (napi_get_value_int64(env, v, out) != napi_ok) {
		napi_throw_type_error(env, "ERR_NATIVE_ARG", "native: expected a number");
		return -1;
	}
	return 0;
}

static int get_bool(napi_env env, napi_value v, bool *out)
{
	if (napi_get_value_bool(env, v, out) != napi_ok) {
		napi_throw_type_error(env, "ERR_NATIVE_ARG", "native: expected a boolean");
		return -1;
	}
	return 0;
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len)
{
	if (napi_get_buffer_info(env, v, data, len) != napi_ok) {
		napi_throw_type_error(env, "ERR_NATIVE_ARG", "native: expected a Buffer");
		return -1;
	}
	return 0;
}

static napi_value make_i64(napi_env env, int64_t x)
{
	napi_value v;
	napi_create_int64(env, x, &v);
	return v;
}

static napi_value make_str(napi_env env, const char *s)
{
	napi_value v;
	napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
	return v;
}

static napi_value make_bool(napi_env env, bool b)
{
	napi_value v;
	napi_get_boolean(env, b, &v);
	return v;
}

/* ---- handles: externals that own a libbpf object, link or ring buffer -------------------------- */

struct handle {
	int kind; /* HANDLE_* */
	void *ptr;
};

enum { HANDLE_OBJECT = 1, HANDLE_LINK = 2, HANDLE_RING = 3 };

static void free_ring(void *ring);

static void release(struct handle *h)
{
	if (!h->ptr)
		return;
	switch (h->kind) {
	case HANDLE_OBJECT:
		bpf_object__close(h->ptr);
		break;
	case HANDLE_LINK:
		bpf_link__destroy(h->ptr);
		break;
	case HANDLE_RING:
		free_ring(h->ptr);
		break;
	}
	h->ptr = NULL;
}

/* A handle the script forgot is released when it is garbage collected. */
static void finalize_handle(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	release(data);
	free(data);
}

static napi_value wrap(napi_env env, int kind, void *ptr)
{
	struct handle *h = calloc(1, sizeof(*h));
	napi_value v;

	if (!h) {
		release(&(struct handle){ kind, ptr });
		return throw_errno(env, ENOMEM, "native: handle");
	}
	h->kind = kind;
	h->ptr = ptr;
	if (napi_create_external(env, h, finalize_handle, NULL, &v) != napi_ok) {
		release(h);
		free(h);
		return throw_napi(env, "napi_create_external");
	}
	return v;
}

static void *unwrap(napi_env env, napi_value v, int kind)
{
	struct handle *h = NULL;
	if (napi_get_value_external(env, v, (void **)&h) != napi_ok || !h || h->kind != kind) {
		napi_throw_type_error(env, "ERR_NATIVE_ARG", "native: wrong handle");
		return NULL;
	}
	if (!h->ptr) {
		napi_throw_error(env, "ERR_NATIVE_CLOSED", "native: handle already closed");
		return NULL;
	}
	return h->ptr;
}

static napi_value close_handle(napi_env env, napi_callback_info info, int kind)
{
	napi_value argv[1];
	struct handle *h = NULL;

	if (get_args(env, info, 1, argv))
		return NULL;
	if (napi_get_value_external(env, argv[0], (void **)&h) != napi_ok || !h || h->kind != kind) {
		napi_throw_type_error(env, "ERR_NATIVE_ARG", "native: wrong handle");
		return NULL;
	}
	release(h);
	return undefined(env);
}

/* ---- objects ------------------------------------------------------------------------------------ */

/*
 * open(path, btfPath?) -> object. btfPath relocates CO-RE accesses against that kernel BTF instead of
 * the running kernel's (tests check compat.bpf.h against other kernels' BTF this way).
 */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	napi_valuetype t;
	char path[4096], btf[4096];
	struct bpf_object *obj;
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	size_t argc = 2;

	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1) {
		napi_throw_type_error(env, NULL, "open(path, btfPath?)");
		return NULL;
	}
	if (get_string(env, argv[0], path, sizeof(path)))
		return NULL;
	if (argc > 1 && napi_typeof(env, argv[1], &t) == napi_ok && t == napi_string) {
		if (get_string(env, argv[1], btf, sizeof(btf)))
			return NULL;
		opts.btf_custom_path = btf;
	}
	clear_log();
	obj = bpf_object__open_file(path, &opts);
	if (!obj)
		return throw_errno(env, errno, "bpf_object__open_file");
	return wrap(env, HANDLE_OBJECT, obj);
}

static struct bpf_program *find_prog(napi_env env, struct bpf_object *obj, napi_value name_v)
{
	char name[256];
	struct bpf_program *p;

	if (get_string(env, name_v, name, sizeof(name)))
		return NULL;
	p = bpf_object__find_program_by_name(obj, name);
	if (!p) {
		char msg[320];
		snprintf(msg, sizeof(msg), "no program %s in the object", name);
		throw_errno(env, ENOENT, msg);
	}
	return p;
}

static struct bpf_map *find_map(napi_env env, struct bpf_object *obj, napi_value name_v)
{
	char name[256];
	struct bpf_map *m;

	if (get_string(env, name_v, name, sizeof(name)))
		return NULL;
	m = bpf_object__find_map_by_name(obj, name);
	if (!m) {
		char msg[320];
		snprintf(msg, sizeof(msg), "no map %s in the object", name);
		throw_errno(env, ENOENT, msg);
	}
	return m;
}

/* describe(object) -> { programs: [{name, section, type, autoload}], maps: [{name, type, keySize,
 * valueSize, maxEntries, fd}] }; fd is -1 before load. */
static napi_value js_describe(napi_env env, napi_callback_info info)
{
	napi_value argv[1], result, progs, maps;
	struct bpf_object *obj;
	struct bpf_program *p;
	struct bpf_map *m;
	uint32_t i = 0;

	if (get_args(env, info, 1, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)))
		return NULL;
	CHECK(napi_create_object(env, &result));
	CHECK(napi_create_array(env, &progs));
	CHECK(napi_create_array(env, &maps));
	bpf_object__for_each_program(p, obj) {
		napi_value o;
		CHECK(napi_create_object(env, &o));
		napi_set_named_property(env, o, "name", make_str(env, bpf_program__name(p)));
		napi_set_named_property(env, o, "section", make_str(env, bpf_program__section_name(p)));
		napi_set_named_property(env, o, "type", make_i64(env, bpf_program__type(p)));
		napi_set_named_property(env, o, "autoload", make_bool(env, bpf_program__autoload(p)));
		napi_set_named_property(env, o, "fd", make_i64(env, bpf_program__fd(p)));
		napi_set_element(env, progs, i++, o);
	}
	i = 0;
	bpf_object__for_each_map(m, obj) {
		napi_value o;
		CHECK(napi_create_object(env, &o));
		napi_set_named_property(env, o, "name", make_str(env, bpf_map__name(m)));
		napi_set_named_property(env, o, "type", make_i64(env, bpf_map__type(m)));
		napi_set_named_property(env, o, "keySize", make_i64(env, bpf_map__key_size(m)));
		napi_set_named_property(env, o, "valueSize", make_i64(env, bpf_map__value_size(m)));
		napi_set_named_property(env, o, "maxEntries", make_i64(env, bpf_map__max_entries(m)));
		napi_set_named_property(env, o, "fd", make_i64(env, bpf_map__fd(m)));
		napi_set_element(env, maps, i++, o);
	}
	napi_set_named_property(env, result, "programs", progs);
	napi_set_named_property(env, result, "maps", maps);
	return result;
}

/* setAutoload(object, program, bool): before load */
static napi_value js_set_autoload(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct bpf_object *obj;
	struct bpf_program *p;
	bool on;
	int err;

	if (get_args(env, info, 3, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(p = find_prog(env, obj, argv[1])) || get_bool(env, argv[2], &on))
		return NULL;
	err = bpf_program__set_autoload(p, on);
	if (err)
		return throw_errno(env, -err, "bpf_program__set_autoload");
	return undefined(env);
}

/* setMaxEntries(object, map, n): before load */
static napi_value js_set_max_entries(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct bpf_object *obj;
	struct bpf_map *m;
	int64_t n;
	int err;

	if (get_args(env, info, 3, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(m = find_map(env, obj, argv[1])) || get_i64(env, argv[2], &n))
		return NULL;
	err = bpf_map__set_max_entries(m, (uint32_t)n);
	if (err)
		return throw_errno(env, -err, "bpf_map__set_max_entries");
	return undefined(env);
}

/* setAutocreate(object, map, bool): before load; a map no chosen program uses need not exist */
static napi_value js_set_autocreate(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct bpf_object *obj;
	struct bpf_map *m;
	bool on;
	int err;

	if (get_args(env, info, 3, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(m = find_map(env, obj, argv[1])) || get_bool(env, argv[2], &on))
		return NULL;
	err = bpf_map__set_autocreate(m, on);
	if (err)
		return throw_errno(env, -err, "bpf_map__set_autocreate");
	return undefined(env);
}

/* writeInitialValue(object, map, offset, bytes): before load; how .rodata knobs are set */
static napi_value js_write_initial_value(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	struct bpf_object *obj;
	struct bpf_map *m;
	int64_t off;
	void *data;
	const void *init;
	char *copy;
	size_t len, size = 0;
	int err;

	if (get_args(env, info, 4, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(m = find_map(env, obj, argv[1])) || get_i64(env, argv[2], &off) ||
	    get_bytes(env, argv[3], &data, &len))
		return NULL;
	init = bpf_map__initial_value(m, &size);
	if (!init)
		return throw_errno(env, EINVAL, "bpf_map__initial_value: map has no initial value");
	if (off < 0 || (size_t)off + len > size)
		return throw_errno(env, ERANGE, "writeInitialValue: write past the end of the section");
	copy = malloc(size);
	if (!copy)
		return throw_errno(env, ENOMEM, "writeInitialValue");
	memcpy(copy, init, size);
	memcpy(copy + off, data, len);
	err = bpf_map__set_initial_value(m, copy, size);
	free(copy);
	if (err)
		return throw_errno(env, -err, "bpf_map__set_initial_value");
	return undefined(env);
}

/* load(object): verifies and loads every program whose autoload is on, creates the maps */
static napi_value js_load(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	struct bpf_object *obj;
	int err;

	if (get_args(env, info, 1, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)))
		return NULL;
	clear_log();
	err = bpf_object__load(obj);
	if (err)
		return throw_errno(env, -err, "bpf_object__load");
	return undefined(env);
}

static napi_value js_close_object(napi_env env, napi_callback_info info)
{
	return close_handle(env, info, HANDLE_OBJECT);
}

/* mapFd(object, map) -> fd */
static napi_value js_map_fd(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct bpf_object *obj;
	struct bpf_map *m;

	if (get_args(env, info, 2, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(m = find_map(env, obj, argv[1])))
		return NULL;
	return make_i64(env, bpf_map__fd(m));
}

/* ---- attach ------------------------------------------------------------------------------------- */

static napi_value link_or_throw(napi_env env, struct bpf_link *link, const char *what)
{
	if (!link)
		return throw_errno(env, errno, what);
	return wrap(env, HANDLE_LINK, link);
}

/* attach(object, program) -> link: by the program's section (tracepoint, tp_btf, raw_tp, kprobe ...) */
static napi_value js_attach(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct bpf_object *obj;
	struct bpf_program *p;

	if (get_args(env, info, 2, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(p = find_prog(env, obj, argv[1])))
		return NULL;
	clear_log();
	return link_or_throw(env, bpf_program__attach(p), "bpf_program__attach");
}

/* attachPerfEvent(object, program, cpu, frequencyHz) -> link: software CPU clock sampling */
static napi_value js_attach_perf_event(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	struct bpf_object *obj;
	struct bpf_program *p;
	struct perf_event_attr attr;
	struct bpf_link *link;
	int64_t cpu, freq;
	int fd;

	if (get_args(env, info, 4, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(p = find_prog(env, obj, argv[1])) || get_i64(env, argv[2], &cpu) || get_i64(env, argv[3], &freq))
		return NULL;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_CPU_CLOCK;
	attr.freq = 1;
	attr.sample_freq = (uint64_t)freq;
	fd = syscall(__NR_perf_event_open, &attr, -1, (int)cpu, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno, "perf_event_open");
	clear_log();
	link = bpf_program__attach_perf_event(p, fd);
	if (!link) {
		int err = errno;
		close(fd);
		return throw_errno(env, err, "bpf_program__attach_perf_event");
	}
	return wrap(env, HANDLE_LINK, link);
}

/* attachUprobe(object, program, binaryPath, functionName, pid, retprobe) -> link */
static napi_value js_attach_uprobe(napi_env env, napi_callback_info info)
{
	napi_value argv[6];
	struct bpf_object *obj;
	struct bpf_program *p;
	char path[4096], func[256];
	int64_t pid;
	bool ret;
	LIBBPF_OPTS(bpf_uprobe_opts, opts);

	if (get_args(env, info, 6, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(p = find_prog(env, obj, argv[1])) || get_string(env, argv[2], path, sizeof(path)) ||
	    get_string(env, argv[3], func, sizeof(func)) || get_i64(env, argv[4], &pid) || get_bool(env, argv[5], &ret))
		return NULL;
	opts.func_name = func;
	opts.retprobe = ret;
	clear_log();
	return link_or_throw(env, bpf_program__attach_uprobe_opts(p, (pid_t)pid, path, 0, &opts),
			     "bpf_program__attach_uprobe_opts");
}

/* attachUprobeAt(object, program, binaryPath, fileOffset, pid) -> link: a plain uprobe at an offset
 * of the file (an instruction inside a function, not only its entry); pid -1 for every process */
static napi_value js_attach_uprobe_at(napi_env env, napi_callback_info info)
{
	napi_value argv[5];
	struct bpf_object *obj;
	struct bpf_program *p;
	char path[4096];
	int64_t offset, pid;
	LIBBPF_OPTS(bpf_uprobe_opts, opts);

	if (get_args(env, info, 5, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(p = find_prog(env, obj, argv[1])) || get_string(env, argv[2], path, sizeof(path)) ||
	    get_i64(env, argv[3], &offset) || get_i64(env, argv[4], &pid))
		return NULL;
	if (offset < 0)
		return throw_errno(env, EINVAL, "attachUprobeAt: a negative offset");
	clear_log();
	return link_or_throw(env, bpf_program__attach_uprobe_opts(p, (pid_t)pid, path, (size_t)offset, &opts),
			     "bpf_program__attach_uprobe_opts");
}

/* attachCgroup(object, program, cgroupDirectory) -> link (cgroup_skb, cgroup_sock, sock_ops ...) */
static napi_value js_attach_cgroup(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct bpf_object *obj;
	struct bpf_program *p;
	struct bpf_link *link;
	char path[4096];
	int fd, err;

	if (get_args(env, info, 3, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(p = find_prog(env, obj, argv[1])) || get_string(env, argv[2], path, sizeof(path)))
		return NULL;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno, "open cgroup directory");
	clear_log();
	link = bpf_program__attach_cgroup(p, fd);
	err = errno;
	close(fd); /* the link holds its own reference to the cgroup */
	if (!link)
		return throw_errno(env, err, "bpf_program__attach_cgroup");
	return wrap(env, HANDLE_LINK, link);
}

/* attachIter(object, program, mapFd) -> link: a BPF iterator over a map's elements (mapFd < 0: none) */
static napi_value js_attach_iter(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct bpf_object *obj;
	struct bpf_program *p;
	int64_t map_fd;
	union bpf_iter_link_info linfo;
	LIBBPF_OPTS(bpf_iter_attach_opts, opts);

	if (get_args(env, info, 3, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) ||
	    !(p = find_prog(env, obj, argv[1])) || get_i64(env, argv[2], &map_fd))
		return NULL;
	memset(&linfo, 0, sizeof(linfo));
	if (map_fd >= 0) {
		linfo.map.map_fd = (__u32)map_fd;
		opts.link_info = &linfo;
		opts.link_info_len = sizeof(linfo);
	}
	clear_log();
	return link_or_throw(env, bpf_program__attach_iter(p, &opts), "bpf_program__attach_iter");
}

/* iterRead(link, maxBytes) -> Buffer: runs the iterator once and returns what it wrote (at most
 * maxBytes; past that the read stops, and the caller sees a full buffer) */
static napi_value js_iter_read(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	struct bpf_link *link;
	int64_t limit;
	char *buf = NULL, *grown;
	size_t len = 0, cap = 0;
	int fd, err = 0;

	if (get_args(env, info, 2, argv) || !(link = unwrap(env, argv[0], HANDLE_LINK)) || get_i64(env, argv[1], &limit))
		return NULL;
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0)
		return throw_errno(env, errno, "bpf_iter_create");
	while ((int64_t)len < limit) {
		ssize_t n;

		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 262144;
			grown = realloc(buf, cap);
			if (!grown) {
				err = ENOMEM;
				break;
			}
			buf = grown;
		}
		n = read(fd, buf + len, (size_t)((int64_t)(cap - len) < limit - (int64_t)len ? cap - len : (size_t)(limit - (int64_t)len)));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			err = errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (err) {
		free(buf);
		return throw_errno(env, err, "read iterator");
	}
	if (napi_create_buffer_copy(env, len, len ? buf : "", NULL, &out) != napi_ok) {
		free(buf);
		return throw_napi(env, "napi_create_buffer_copy");
	}
	free(buf);
	return out;
}

static napi_value js_destroy_link(napi_env env, napi_callback_info info)
{
	return close_handle(env, info, HANDLE_LINK);
}

/* ---- maps --------------------------------------------------------------------------------------- */

/* mapLookup(fd, key, valueSize) -> Buffer | null */
static napi_value js_map_lookup(napi_env env, napi_callback_info info)
{
	napi_value argv[3], out;
	int64_t fd, vsize;
	void *key, *val;
	size_t klen;

	if (get_args(env, info, 3, argv) || get_i64(env, argv[0], &fd) || get_bytes(env, argv[1], &key, &klen) ||
	    get_i64(env, argv[2], &vsize))
		return NULL;
	CHECK(napi_create_buffer(env, (size_t)vsize, &val, &out));
	if (bpf_map_lookup_elem((int)fd, key, val)) {
		if (errno == ENOENT) {
			napi_value nul;
			napi_get_null(env, &nul);
			return nul;
		}
		return throw_errno(env, errno, "bpf_map_lookup_elem");
	}
	return out;
}

/* mapUpdate(fd, key, value, flags) */
static napi_value js_map_update(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	int64_t fd, flags;
	void *key, *val;
	size_t klen, vlen;

	if (get_args(env, info, 4, argv) || get_i64(env, argv[0], &fd) || get_bytes(env, argv[1], &key, &klen) ||
	    get_bytes(env, argv[2], &val, &vlen) || get_i64(env, argv[3], &flags))
		return NULL;
	if (bpf_map_update_elem((int)fd, key, val, (uint64_t)flags))
		return throw_errno(env, errno, "bpf_map_update_elem");
	return undefined(env);
}

/* mapDelete(fd, key) -> bool (false: there was no such key) */
static napi_value js_map_delete(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	int64_t fd;
	void *key;
	size_t klen;

	if (get_args(env, info, 2, argv) || get_i64(env, argv[0], &fd) || get_bytes(env, argv[1], &key, &klen))
		return NULL;
	if (bpf_map_delete_elem((int)fd, key)) {
		if (errno == ENOENT)
			return make_bool(env, false);
		return throw_errno(env, errno, "bpf_map_delete_elem");
	}
	return make_bool(env, true);
}

/* mapNextKey(fd, key | null, keySize) -> Buffer | null: iteration where batch operations are missing */
static napi_value js_map_next_key(napi_env env, napi_callback_info info)
{
	napi_value argv[3], out;
	napi_valuetype t;
	int64_t fd, ksize;
	void *key = NULL, *next;
	size_t klen;

	if (get_args(env, info, 3, argv) || get_i64(env, argv[0], &fd) || get_i64(env, argv[2], &ksize))
		return NULL;
	napi_typeof(env, argv[1], &t);
	if (t != napi_null && t != napi_undefined && get_bytes(env, argv[1], &key, &klen))
		return NULL;
	CHECK(napi_create_buffer(env, (size_t)ksize, &next, &out));
	if (bpf_map_get_next_key((int)fd, key, next)) {
		if (errno == ENOENT) {
			napi_value nul;
			napi_get_null(env, &nul);
			return nul;
		}
		return throw_errno(env, errno, "bpf_map_get_next_key");
	}
	return out;
}

/*
 * mapLookupBatch(fd, keySize, valueSize, capacity, deleteToo) -> { keys, values, count }
 * Reads the whole map (at most capacity entries) in kernel batches into two buffers (keys and values
 * packed back to back). valueSize is the size of one entry as the kernel copies it (for per-CPU
 * maps, the rounded value size times the possible CPUs, so one entry can be 30 KiB on a big node):
 * memory grows with the entries there are, a batch at a time, never with the map's capacity.
 * deleteToo uses lookup-and-delete: each entry is read exactly once.
 */
#define BATCH_ENTRIES 256

static int grow(char **buf, size_t *cap, size_t need)
{
	size_t c = *cap ? *cap : need;
	char *nb;

	while (c < need)
		c *= 2;
	if (c == *cap)
		return 0;
	nb = realloc(*buf, c);
	if (!nb)
		return -1;
	*buf = nb;
	*cap = c;
	return 0;
}

static napi_value js_map_lookup_batch(napi_env env, napi_callback_info info)
{
	napi_value argv[5], result, keys_v, values_v;
	int64_t fd, ksize, vsize, cap;
	bool del;
	char *keys = NULL, *values = NULL;
	size_t kcap = 0, vcap = 0;
	uint64_t in_batch = 0, out_batch = 0;
	bool first = true;
	uint32_t total = 0, chunk = BATCH_ENTRIES;
	int err = 0;
	LIBBPF_OPTS(bpf_map_batch_opts, opts);

	if (get_args(env, info, 5, argv) || get_i64(env, argv[0], &fd) || get_i64(env, argv[1], &ksize) ||
	    get_i64(env, argv[2], &vsize) || get_i64(env, argv[3], &cap) || get_bool(env, argv[4], &del))
		return NULL;
	if (cap <= 0 || ksize <= 0 || vsize <= 0)
		return throw_errno(env, EINVAL, "mapLookupBatch: sizes and capacity must be positive");
	while (total < (uint32_t)cap) {
		uint32_t count = chunk < (uint32_t)cap - total ? chunk : (uint32_t)cap - total;

		if (grow(&keys, &kcap, (size_t)(total + count) * ksize) || grow(&values, &vcap, (size_t)(total + count) * vsize)) {
			err = ENOMEM;
			break;
		}
		if (del)
			err = bpf_map_lookup_and_delete_batch((int)fd, first ? NULL : &in_batch, &out_batch,
							      keys + total * ksize, values + total * vsize, &count, &opts);
		else
			err = bpf_map_lookup_batch((int)fd, first ? NULL : &in_batch, &out_batch, keys + total * ksize,
						   values + total * vsize, &count, &opts);
		err = err ? errno : 0;
		total += count;
		if (err == ENOENT) { /* the map has been read to its end */
			err = 0;
			break;
		}
		/* a hash bucket holds more entries than the batch has room for: retry with a larger batch */
		if (err == ENOSPC && count == 0 && chunk < (uint32_t)cap) {
			chunk *= 2;
			continue;
		}
		if (err)
			break;
		in_batch = out_batch;
		first = false;
	}
	if (err) {
		free(keys);
		free(values);
		return throw_errno(env, err, del ? "bpf_map_lookup_and_delete_batch" : "bpf_map_lookup_batch");
	}
	CHECK(napi_create_buffer_copy(env, total * ksize, keys, NULL, &keys_v));
	CHECK(napi_create_buffer_copy(env, total * vsize, values, NULL, &values_v));
	free(keys);
	free(values);
	CHECK(napi_create_object(env, &result));
	napi_set_named_property(env, result, "keys", keys_v);
	napi_set_named_property(env, result, "values", values_v);
	napi_set_named_property(env, result, "count", make_i64(env, total));
	return result;
}

/* ---- ring buffers ------------------------------------------------------------------------------- */

/*
 * A drain copies records into one growing buffer: each record is [u32 size][u32 0][bytes, padded to 8].
 * When the buffer passes the caller's limit the callback stops the drain. libbpf has already advanced
 * the consumer position past that record, and it was copied, so nothing is lost; the rest waits for
 * the next drain.
 */
struct ring {
	struct ring_buffer *rb;
	char *buf;
	size_t len, cap, limit;
	uint32_t count;
	int oom;
	struct ring_watch *watch; /* NULL until ringWatch */
};

/*
 * A watch turns the kernel's wakeup into one call of a script function: libuv polls the ring's epoll
 * descriptor on the main loop, and the first readable event stops the poll and calls back once. The
 * script drains and arms it again, so a busy ring costs one callback per drain, not one per record
 * (and a program decides when its records wake anyone: l7's only past a quarter of its ring).
 */
struct ring_watch {
	uv_poll_t poll; /* first: the close callback frees the watch through it */
	napi_env env;
	napi_ref callback;
	napi_async_context async;
	int armed;
};

static void watch_closed(uv_handle_t *h)
{
	free(h);
}

static void watch_fired(uv_poll_t *p, int status, int events)
{
	struct ring_watch *w = p->data;
	napi_handle_scope scope;
	napi_value fn, recv, result;

	(void)events;
	uv_poll_stop(p);
	w->armed = 0;
	if (!w->callback || napi_open_handle_scope(w->env, &scope) != napi_ok)
		return;
	if (napi_get_reference_value(w->env, w->callback, &fn) == napi_ok && fn && napi_get_global(w->env, &recv) == napi_ok) {
		napi_value arg;
		napi_create_int32(w->env, status, &arg);
		/* an exception goes to the process's uncaughtException, like any callback's */
		napi_make_callback(w->env, w->async, recv, fn, 1, &arg, &result);
	}
	napi_close_handle_scope(w->env, scope);
}

static void free_watch(struct ring_watch *w)
{
	if (!w)
		return;
	uv_poll_stop(&w->poll);
	napi_delete_reference(w->env, w->callback);
	napi_async_destroy(w->env, w->async);
	uv_close((uv_handle_t *)&w->poll, watch_closed);
}

#define DRAIN_FULL 1000000 /* our own stop signal through libbpf's callback */

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct ring *r = ctx;
	size_t need = 8 + ((size + 7) & ~(size_t)7);

	if (r->len + need > r->cap) {
		size_t cap = r->cap ? r->cap : 65536;
		while (cap < r->len + need)
			cap *= 2;
		char *nb = realloc(r->buf, cap);
		if (!nb) {
			r->oom = 1;
			return -DRAIN_FULL;
		}
		r->buf = nb;
		r->cap = cap;
	}
	uint32_t hdr[2] = { (uint32_t)size, 0 };
	memcpy(r->buf + r->len, hdr, 8);
	memcpy(r->buf + r->len + 8, data, size);
	memset(r->buf + r->len + 8 + size, 0, need - 8 - size);
	r->len += need;
	r->count++;
	return r->len >= r->limit ? -DRAIN_FULL : 0;
}

static void free_ring(void *ring)
{
	struct ring *r = ring;

	free_watch(r->watch);
	if (r->rb)
		ring_buffer__free(r->rb);
	free(r->buf);
	free(r);
}

/* ringOpen(mapFd) -> ring */
static napi_value js_ring_open(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int64_t fd;
	struct ring *r;

	if (get_args(env, info, 1, argv) || get_i64(env, argv[0], &fd))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return throw_errno(env, ENOMEM, "ringOpen");
	clear_log();
	r->rb = ring_buffer__new((int)fd, ring_sample, r, NULL);
	if (!r->rb) {
		int err = errno;
		free(r);
		return throw_errno(env, err, "ring_buffer__new");
	}
	return wrap(env, HANDLE_RING, r);
}

/* ringDrain(ring, maxBytes) -> { buffer, count, more } */
static napi_value js_ring_drain(napi_env env, napi_callback_info info)
{
	napi_value argv[2], result, buf;
	struct ring *r;
	int64_t limit;
	int n;

	if (get_args(env, info, 2, argv) || !(r = unwrap(env, argv[0], HANDLE_RING)) || get_i64(env, argv[1], &limit))
		return NULL;
	r->len = 0;
	r->count = 0;
	r->oom = 0;
	r->limit = limit > 0 ? (size_t)limit : 1;
	n = ring_buffer__consume(r->rb);
	if (n < 0 && n != -DRAIN_FULL)
		return throw_errno(env, -n, "ring_buffer__consume");
	if (r->oom)
		return throw_errno(env, ENOMEM, "ringDrain");
	CHECK(napi_create_buffer_copy(env, r->len, r->buf, NULL, &buf));
	CHECK(napi_create_object(env, &result));
	napi_set_named_property(env, result, "buffer", buf);
	napi_set_named_property(env, result, "count", make_i64(env, r->count));
	napi_set_named_property(env, result, "more", make_bool(env, n == -DRAIN_FULL));
	/* a flood once must not pin a large buffer forever */
	if (r->cap > 4 * (size_t)r->limit + 65536) {
		free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
	return result;
}

/* ringWatch(ring, callback): calls callback(status) once when the ring has records; call again to re-arm */
static napi_value js_ring_watch(napi_env env, napi_callback_info info)
{
	napi_value argv[2], name, resource;
	napi_valuetype type;
	struct ring *r;
	struct ring_watch *w;
	uv_loop_t *loop;
	int err;

	if (get_args(env, info, 2, argv) || !(r = unwrap(env, argv[0], HANDLE_RING)))
		return NULL;
	if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_function) {
		napi_throw_type_error(env, "ERR_NATIVE_ARG", "ringWatch: callback must be a function");
		return NULL;
	}
	w = r->watch;
	if (!w) {
		CHECK(napi_get_uv_event_loop(env, &loop));
		CHECK(napi_create_string_utf8(env, "periscope:ring", NAPI_AUTO_LENGTH, &name));
		CHECK(napi_create_object(env, &resource));
		w = calloc(1, sizeof(*w));
		if (!w)
			return throw_errno(env, ENOMEM, "ringWatch");
		err = uv_poll_init(loop, &w->poll, ring_buffer__epoll_fd(r->rb));
		if (err) {
			free(w);
			return throw_errno(env, -err, "uv_poll_init");
		}
		w->poll.data = w;
		w->env = env;
		/* the agent's timers keep the process alive, not a watch */
		uv_unref((uv_handle_t *)&w->poll);
		if (napi_async_init(env, resource, name, &w->async) != napi_ok) {
			uv_close((uv_handle_t *)&w->poll, watch_closed);
			return throw_napi(env, "napi_async_init");
		}
		r->watch = w;
	} else {
		napi_delete_reference(env, w->callback);
		w->callback = NULL;
	}
	CHECK(napi_create_reference(env, argv[1], 1, &w->callback));
	if (!w->armed) {
		err = uv_poll_start(&w->poll, UV_READABLE, watch_fired);
		if (err)
			return throw_errno(env, -err, "uv_poll_start");
		w->armed = 1;
	}
	return undefined(env);
}

static napi_value js_ring_close(napi_env env, napi_callback_info info)
{
	return close_handle(env, info, HANDLE_RING);
}

/* ---- probes and facts --------------------------------------------------------------------------- */

/* progTestRun(obj, program, data) -> retval: runs a loaded program once (BPF_PROG_TEST_RUN) */
static napi_value js_prog_test_run(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct bpf_object *obj;
	struct bpf_program *prog;
	void *data;
	size_t len;
	LIBBPF_OPTS(bpf_test_run_opts, opts);

	if (get_args(env, info, 3, argv) || !(obj = unwrap(env, argv[0], HANDLE_OBJECT)) || !(prog = find_prog(env, obj, argv[1])) ||
	    get_bytes(env, argv[2], &data, &len))
		return NULL;
	opts.data_in = data;
	opts.data_size_in = (uint32_t)len;
	opts.repeat = 1;
	if (bpf_prog_test_run_opts(bpf_program__fd(prog), &opts))
		return throw_errno(env, errno, "bpf_prog_test_run_opts");
	return make_i64(env, opts.retval);
}

/* probeProgramType(type) -> 1 supported, 0 not, throws on error */
static napi_value js_probe_prog_type(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int64_t t;
	int r;

	if (get_args(env, info, 1, argv) || get_i64(env, argv[0], &t))
		return NULL;
	r = libbpf_probe_bpf_prog_type((enum bpf_prog_type)t, NULL);
	if (r < 0)
		return throw_errno(env, -r, "libbpf_probe_bpf_prog_type");
	return make_i64(env, r);
}

static napi_value js_probe_map_type(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int64_t t;
	int r;

	if (get_args(env, info, 1, argv) || get_i64(env, argv[0], &t))
		return NULL;
	r = libbpf_probe_bpf_map_type((enum bpf_map_type)t, NULL);
	if (r < 0)
		return throw_errno(env, -r, "libbpf_probe_bpf_map_type");
	return make_i64(env, r);
}

/* createMap(type, keySize, valueSize, maxEntries) -> fd: for probes; closeFd(fd) */
static napi_value js_create_map(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	int64_t t, k, v, n;
	int fd;

	if (get_args(env, info, 4, argv) || get_i64(env, argv[0], &t) || get_i64(env, argv[1], &k) ||
	    get_i64(env, argv[2], &v) || get_i64(env, argv[3], &n))
		return NULL;
	fd = bpf_map_create((enum bpf_map_type)t, NULL, (uint32_t)k, (uint32_t)v, (uint32_t)n, NULL);
	if (fd < 0)
		return throw_errno(env, errno, "bpf_map_create");
	return make_i64(env, fd);
}

static napi_value js_close_fd(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	int64_t fd;

	if (get_args(env, info, 1, argv) || get_i64(env, argv[0], &fd))
		return NULL;
	close((int)fd);
	return undefined(env);
}

static napi_value js_num_possible_cpus(napi_env env, napi_callback_info info)
{
	(void)info;
	int n = libbpf_num_possible_cpus();
	if (n < 0)
		return throw_errno(env, -n, "libbpf_num_possible_cpus");
	return make_i64(env, n);
}

/* monotonicNs() -> bigint: CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns() */
static napi_value js_monotonic_ns(napi_env env, napi_callback_info info)
{
	(void)info;
	struct timespec ts;
	napi_value v;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	napi_create_bigint_uint64(env, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, &v);
	return v;
}

/*
 * cgroupPath(mountDir, id) -> string | null: the path of a cgroup2 directory from its id. cgroupfs
 * file handles are the 64-bit kernfs id (FILEID_KERNFS), so open_by_handle_at opens the directory
 * and /proc/self/fd names it. null when no such cgroup exists (any more). Needs CAP_DAC_READ_SEARCH.
 */
static napi_value js_cgroup_path(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	char mount[4096], link[64], path[4096];
	int64_t id;
	struct {
		struct file_handle fh;
		uint64_t id;
	} h;
	int mfd, fd;
	ssize_t n;

	if (get_args(env, info, 2, argv) || get_string(env, argv[0], mount, sizeof(mount)) || get_i64(env, argv[1], &id))
		return NULL;
	mfd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0)
		return throw_errno(env, errno, "open cgroup2 mount");
	h.fh.handle_bytes = sizeof(uint64_t);
	h.fh.handle_type = 0xfe; /* FILEID_KERNFS */
	h.id = (uint64_t)id;
	fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_CLOEXEC);
	close(mfd);
	if (fd < 0) {
		int err = errno;
		napi_value nul;
		if (err == ESTALE || err == ENOENT) {
			napi_get_null(env, &nul);
			return nul;
		}
		return throw_errno(env, err, "open_by_handle_at");
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	close(fd);
	if (n < 0)
		return throw_errno(env, errno, "readlink");
	path[n] = 0;
	return make_str(env, path);
}

/* ---- module ------------------------------------------------------------------------------------- */

static void set_const(napi_env env, napi_value obj, const char *name, int64_t v)
{
	napi_set_named_property(env, obj, name, make_i64(env, v));
}

#define C(obj, x) set_const(env, obj, #x, x)

static napi_value constants(napi_env env)
{
	napi_value c, prog, map;
	napi_create_object(env, &c);
	napi_create_object(env, &prog);
	napi_create_object(env, &map);
	C(prog, BPF_PROG_TYPE_TRACEPOINT);
	C(prog, BPF_PROG_TYPE_RAW_TRACEPOINT);
	C(prog, BPF_PROG_TYPE_TRACING);
	C(prog, BPF_PROG_TYPE_KPROBE);
	C(prog, BPF_PROG_TYPE_PERF_EVENT);
	C(prog, BPF_PROG_TYPE_CGROUP_SKB);
	C(prog, BPF_PROG_TYPE_CGROUP_SOCK);
	C(prog, BPF_PROG_TYPE_SOCK_OPS);
	C(prog, BPF_PROG_TYPE_SCHED_CLS);
	C(prog, BPF_PROG_TYPE_XDP);
	C(prog, BPF_PROG_TYPE_LSM);
	C(map, BPF_MAP_TYPE_HASH);
	C(map, BPF_MAP_TYPE_ARRAY);
	C(map, BPF_MAP_TYPE_PERCPU_HASH);
	C(map, BPF_MAP_TYPE_PERCPU_ARRAY);
	C(map, BPF_MAP_TYPE_LRU_HASH);
	C(map, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	C(map, BPF_MAP_TYPE_RINGBUF);
	C(map, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	C(map, BPF_MAP_TYPE_STACK_TRACE);
	C(map, BPF_MAP_TYPE_TASK_STORAGE);
	napi_set_named_property(env, c, "progTypes", prog);
	napi_set_named_property(env, c, "mapTypes", map);
	C(c, BPF_ANY);
	C(c, BPF_NOEXIST);
	C(c, BPF_EXIST);
	C(c, BPF_F_NO_PREALLOC);
	return c;
}

static napi_value init(napi_env env, napi_value exports)
{
	static const struct {
		const char *name;
		napi_callback fn;
	} fns[] = {
		{ "open", js_open },
		{ "describe", js_describe },
		{ "setAutoload", js_set_autoload },
		{ "setMaxEntries", js_set_max_entries },
		{ "setAutocreate", js_set_autocreate },
		{ "writeInitialValue", js_write_initial_value },
		{ "load", js_load },
		{ "closeObject", js_close_object },
		{ "mapFd", js_map_fd },
		{ "attach", js_attach },
		{ "attachPerfEvent", js_attach_perf_event },
		{ "attachUprobe", js_attach_uprobe },
		{ "attachUprobeAt", js_attach_uprobe_at },
		{ "attachCgroup", js_attach_cgroup },
		{ "attachIter", js_attach_iter },
		{ "iterRead", js_iter_read },
		{ "destroyLink", js_destroy_link },
		{ "mapLookup", js_map_lookup },
		{ "mapUpdate", js_map_update },
		{ "mapDelete", js_map_delete },
		{ "mapNextKey", js_map_next_key },
		{ "mapLookupBatch", js_map_lookup_batch },
		{ "ringOpen", js_ring_open },
		{ "ringDrain", js_ring_drain },
		{ "ringClose", js_ring_close },
		{ "ringWatch", js_ring_watch },
		{ "progTestRun", js_prog_test_run },
		{ "probeProgramType", js_probe_prog_type },
		{ "probeMapType", js_probe_map_type },
		{ "createMap", js_create_map },
		{ "closeFd", js_close_fd },
		{ "numPossibleCpus", js_num_possible_cpus },
		{ "monotonicNs", js_monotonic_ns },
		{ "cgroupPath", js_cgroup_path },
	};
	char version[32];

	libbpf_set_print(collect_libbpf_print);
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
	napi_set_named_property(env, exports, "constants", constants(env));
	snprintf(version, sizeof(version), "%u.%u", libbpf_major_version(), libbpf_minor_version());
	napi_set_named_property(env, exports, "libbpfVersion", make_str(env, version));
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
