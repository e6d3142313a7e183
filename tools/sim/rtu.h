/*
 * Modbus RTU framing for a slave: CRC-16/Modbus (poly 0xA001, init
 * 0xFFFF, low byte first on the wire; vectors in docs/profiles.md,
 * "CRC-16/Modbus"), request lengths by function code, and opening a serial device
 * with termios (baud, parity, data and stop bits). Frames are delimited by
 * known request lengths and, for anything else, by the inter-frame silence
 * (server.c).
 */
#ifndef SIM_RTU_H
#define SIM_RTU_H

#include <stddef.h>
#include <stdint.h>

#define RTU_FRAME_MAX 256

/* CRC-16/Modbus of buf[0..len). */
uint16_t rtu_crc16(const uint8_t *buf, size_t len);

/*
 * Length of the request frame at buf (address, PDU, CRC), judged from the
 * bytes available: > 0 the full length, 0 when more bytes are needed to
 * tell, -1 when the function code has no known request length (wait for
 * the silence).
 */
int rtu_request_len(const uint8_t *buf, size_t len);

/*
 * Opens dev raw at baud with parity 'N'|'E'|'O', data_bits 7|8 and
 * stop_bits 1|2, non-blocking. Returns the fd or a negative errno.
 */
int rtu_open(const char *dev, int baud, char parity, int data_bits,
	     int stop_bits);

/* Inter-frame silence (3.5 characters, at least 1.75 ms above 19200 baud)
 * in microseconds. */
long rtu_silence_us(int baud);

#endif
