/*
 * The station's reasons for people (firmware/src/health.c, issue 22): a
 * missing serial device, a refused TCP port, a timeout on a bus where
 * another sensor answers (this slave id does not) against one where
 * nothing does (the bus), libmodbus's codes in words.
 */
#include <errno.h>
#include <string.h>

#include <modbus/modbus.h>

#include "health.h"
#include "test.h"

static void test_bus(void)
{
	struct station_bus rtu = {.name = "rs485", .device = "/dev/ttyUSB9"};
	struct station_bus tcp = {.name = "lan", .is_tcp = true, .host = "10.0.0.5", .port = 502};
	char buf[200];

	health_bus_reason(&rtu, ENOENT, buf, sizeof(buf));
	CHECK_STR(buf, "/dev/ttyUSB9: no such device");
	health_bus_reason(&rtu, EACCES, buf, sizeof(buf));
	CHECK_STR(buf, "/dev/ttyUSB9: permission denied (the service user needs group dialout)");
	health_bus_reason(&tcp, ECONNREFUSED, buf, sizeof(buf));
	CHECK_STR(buf, "10.0.0.5:502: connection refused (nothing listens there)");
	health_bus_reason(&tcp, ETIMEDOUT, buf, sizeof(buf));
	CHECK_STR(buf, "10.0.0.5:502: connection timed out");
	health_bus_reason(&rtu, 0, buf, sizeof(buf));
	CHECK_STR(buf, "/dev/ttyUSB9: not opened yet");
}

static void test_sensor(void)
{
	struct station_bus b = {.name = "lan", .is_tcp = true, .host = "h", .port = 1502};
	struct station_sensor s = {.name = "sonde2", .slave = 9};
	struct health_bus_facts f = {.bus_open = true, .others = 1, .others_answering = 1};
	char buf[200];

	health_sensor_reason(&s, &b, ETIMEDOUT, &f, buf, sizeof(buf));
	CHECK_STR(buf, "timeout: slave 9 does not answer; other sensors on lan do "
		  "(wrong slave id, or its power or cable)");
	f.others_answering = 0;
	health_sensor_reason(&s, &b, ETIMEDOUT, &f, buf, sizeof(buf));
	CHECK_STR(buf, "timeout: nothing answers on lan (power, wiring A/B, termination, "
		  "line settings)");
	f.others = 0;
	health_sensor_reason(&s, &b, ETIMEDOUT, &f, buf, sizeof(buf));
	CHECK(strstr(buf, "timeout: slave 9 does not answer on lan, nothing else there to compare") == buf);
	f = (struct health_bus_facts){.bus_open = false, .bus_error = ECONNREFUSED};
	health_sensor_reason(&s, &b, ENOTCONN, &f, buf, sizeof(buf));
	CHECK_STR(buf, "bus lan down: h:1502: connection refused (nothing listens there)");
	f.bus_open = true;
	health_sensor_reason(&s, &b, EMBXILADD, &f, buf, sizeof(buf));
	CHECK_STR(buf, "slave 9: exception 02, illegal address: no such register "
		  "(wrong profile or model?)");
	health_sensor_reason(&s, &b, EMBBADCRC, &f, buf, sizeof(buf));
	CHECK(strstr(buf, "bad CRC") != NULL);
	/* Nothing untranslated leaks as a bare number. */
	CHECK(strcmp(health_errno_text(EMBXGTAR), "") != 0);
	CHECK(strstr(health_errno_text(12345), "Unknown error") != NULL ||
	      strlen(health_errno_text(12345)) > 0);
}

int main(void)
{
	test_bus();
	test_sensor();
	return test_main("test_firmware_health");
}
