/*
 * libFuzzer harness for gateway.json: gateway_config_load() (it reads a
 * path, so each input goes through an in-memory file). Seeds:
 * tests/fuzz/corpus/gateway_config/.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gateway/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gateway_config cfg;
	struct agri_err err;
	char path[64];
	int fd = memfd_create("gateway.json", 0);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		(void)gateway_config_load(path, &cfg, &err);
	}
	close(fd);
	return 0;
}
