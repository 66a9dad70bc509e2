/*
 * The C API of rlm_rust.so through its public header, linked like a C
 * integrator would: rlm_rust_version() and rlm_rust_self_test().
 */
#include <stdio.h>
#include <string.h>

#include "rlm_rust.h"

#ifndef RLM_RUST_CARGO_VERSION
#error "RLM_RUST_CARGO_VERSION must be defined (parsed from Cargo.toml by CMake)"
#endif

static int failures;

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			failures++;                                           \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
		}                                                             \
	} while (0)

int main(void)
{
	const char *version = rlm_rust_version();

	CHECK(version != NULL, "rlm_rust_version() returned NULL");
	if (version) {
		CHECK(version[0] != '\0', "empty version string");
		CHECK(strcmp(version, RLM_RUST_CARGO_VERSION) == 0,
		      "version \"%s\" != Cargo.toml version \"%s\"", version, RLM_RUST_CARGO_VERSION);
		/* Static string: the same pointer every time. */
		CHECK(rlm_rust_version() == version, "version pointer changed between calls");
		printf("rlm_rust_version() = \"%s\"\n", version);
	}

	int rc = rlm_rust_self_test();
	CHECK(rc == 0, "rlm_rust_self_test() returned %d", rc);
	/* Twice: the self-test must not depend on one-time state. */
	rc = rlm_rust_self_test();
	CHECK(rc == 0, "second rlm_rust_self_test() returned %d", rc);

	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
