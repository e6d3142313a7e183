/*
 * libFuzzer harness for station.json: station_config_parse() on arbitrary
 * bytes (the same parser the station, remote config and agrictl use), and
 * the reader of a pushed config's signature envelope (agri/sign.h: the
 * suffix, the technician's name, the strict base64), then the document it
 * frames, as the station parses it once the signature verifies. Profiles
 * come from the source tree. Seeds: tests/fuzz/corpus/firmware_config/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agri/sign.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct station_config cfg, other;
	static char doc[STATION_CONFIG_MAX_BYTES + 2];
	unsigned char sig[SIGN_ED25519_LEN], raw[96];
	char by[SIGN_NAME_MAX + 1];
	struct agri_err err;
	size_t head;

	setenv("AGRI_PROFILES_DIR", AGRI_SOURCE_DIR "/protocols/profiles", 0);
	if (station_config_parse((const char *)data, size, "/nonexistent/station.json", &cfg,
				 &err) == 0)
		(void)station_config_remote_check(&cfg, &cfg, &err);
	if (sign_envelope_open((const char *)data, size, &head, by, sig) == 0 &&
	    head + 1 <= STATION_CONFIG_MAX_BYTES) {
		memcpy(doc, data, head);
		doc[head] = '}';
		if (station_config_parse(doc, head + 1, "/nonexistent/station.json", &other,
					 &err) == 0 && cfg.station[0])
			(void)station_config_remote_check(&cfg, &other, &err);
	}
	(void)sign_base64_decode((const char *)data, size < 128 ? size : 128, raw, sizeof(raw));
	return 0;
}
