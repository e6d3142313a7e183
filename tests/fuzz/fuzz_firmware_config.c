/*
 * libFuzzer harness for station.json: station_config_parse() on arbitrary
 * bytes (the same parser the station, remote config and agrictl use).
 * Profiles come from the source tree. Seeds: tests/fuzz/corpus/firmware_config/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct station_config cfg;
	struct agri_err err;

	setenv("AGRI_PROFILES_DIR", AGRI_SOURCE_DIR "/protocols/profiles", 0);
	(void)station_config_parse((const char *)data, size, "/nonexistent/station.json", &cfg, &err);
	return 0;
}
