/*
 * Loads rlm_rust.so the way radiusd 3.2 does: the server libraries are
 * already in the process, the module is dlopen()ed with RTLD_NOW (every
 * undefined symbol must resolve at once) and its module_t is looked up as
 * "rlm_rust". With the FreeRADIUS headers (HAVE_FREERADIUS_HEADERS) the
 * module_t is also checked against this server version: magic number, name,
 * thread safety and the methods the example site calls.
 *
 *   test_dlopen /path/to/librlm_rust.so
 */
#ifdef HAVE_FREERADIUS_HEADERS
#include <freeradius/radiusd.h>
#include <freeradius/modules.h>
#endif

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#ifndef FREERADIUS_LIBDIR
#define FREERADIUS_LIBDIR "/usr/lib/freeradius"
#endif

static int failures;

static void fail(const char *what, const char *detail)
{
	failures++;
	fprintf(stderr, "FAIL: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

static int load_global(const char *path)
{
	/* GLOBAL: the module (loaded later, LOCAL like radiusd does) must see them. */
	if (!dlopen(path, RTLD_NOW | RTLD_GLOBAL)) {
		fail("loading a FreeRADIUS library", dlerror());
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s /path/to/librlm_rust.so\n", argv[0]);
		return 2;
	}

	/* libfreeradius-server.so needs libfreeradius-radius.so's symbols first. */
	if (load_global(FREERADIUS_LIBDIR "/libfreeradius-radius.so") ||
	    load_global(FREERADIUS_LIBDIR "/libfreeradius-server.so"))
		return 1;

	void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		fail("dlopen(RTLD_NOW) of the module", dlerror());
		return 1;
	}

	void *sym = dlsym(handle, "rlm_rust");
	if (!sym) {
		fail("symbol rlm_rust (the module_t) not exported", dlerror());
		return 1;
	}
	printf("rlm_rust found at %p\n", sym);

#ifdef HAVE_FREERADIUS_HEADERS
	const module_t *m = sym;
	if (m->magic != RLM_MODULE_INIT) {
		char buf[128];
		snprintf(buf, sizeof(buf), "module 0x%llx, server 0x%llx",
			 (unsigned long long)m->magic, (unsigned long long)RLM_MODULE_INIT);
		fail("magic number differs from this FreeRADIUS version", buf);
	}
	if (!m->name || strcmp(m->name, "rust") != 0)
		fail("module name is not \"rust\"", m->name);
	if ((m->type & RLM_TYPE_THREAD_UNSAFE) != 0)
		fail("module is not thread-safe (RLM_TYPE_THREAD_UNSAFE set)", NULL);
	if (!m->instantiate)
		fail("no instantiate callback", NULL);
	if (!m->detach)
		fail("no detach callback", NULL);

	static const struct {
		int idx;
		const char *name;
	} methods[] = {
		{ MOD_AUTHENTICATE, "authenticate" },
		{ MOD_AUTHORIZE, "authorize" },
		{ MOD_PREACCT, "preacct" },
		{ MOD_ACCOUNTING, "accounting" },
		{ MOD_POST_AUTH, "post_auth" },
	};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (!m->methods[methods[i].idx])
			fail("method missing", methods[i].name);
	}
	printf("module_t: name=%s magic=0x%llx inst_size=%zu\n", m->name ? m->name : "(null)",
	       (unsigned long long)m->magic, m->inst_size);
#endif

	if (dlclose(handle) != 0)
		fail("dlclose", dlerror());

	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
