/*
 * RTU framing and the serial port (see rtu.h).
 */
#include "rtu.h"

#include <errno.h>
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

uint16_t rtu_crc16(const uint8_t *buf, size_t len)
{
	uint16_t crc = 0xFFFF;

	for (size_t i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

int rtu_request_len(const uint8_t *buf, size_t len)
{
	if (len < 2)
		return 0;
	switch (buf[1]) {
	case 0x01: case 0x02: case 0x03: case 0x04: case 0x05: case 0x06:
		return 8;
	case 0x07: case 0x0B: case 0x0C: case 0x11:
		return 4;
	case 0x08:
		return 8;
	case 0x0F: case 0x10:
		if (len < 7)
			return 0;
		return 9 + buf[6];
	case 0x16:
		return 10;
	case 0x17:
		if (len < 11)
			return 0;
		return 13 + buf[10];
	default:
		return -1;
	}
}

static speed_t baud_constant(int baud)
{
	switch (baud) {
	case 1200: return B1200;
	case 2400: return B2400;
	case 4800: return B4800;
	case 9600: return B9600;
	case 19200: return B19200;
	case 38400: return B38400;
	case 57600: return B57600;
	case 115200: return B115200;
	case 230400: return B230400;
	default: return 0;
	}
}

int rtu_open(const char *dev, int baud, char parity, int data_bits,
	     int stop_bits)
{
	struct termios tio;
	speed_t speed = baud_constant(baud);
	int fd, err;

	if (!speed)
		return -EINVAL;
	fd = open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &tio) < 0)
		goto fail;
	cfmakeraw(&tio);
	cfsetispeed(&tio, speed);
	cfsetospeed(&tio, speed);
	tio.c_cflag |= CLOCAL | CREAD;
	tio.c_cflag &= ~(CSIZE | PARENB | PARODD | CSTOPB | CRTSCTS);
	tio.c_cflag |= data_bits == 7 ? CS7 : CS8;
	if (stop_bits == 2)
		tio.c_cflag |= CSTOPB;
	if (parity == 'E')
		tio.c_cflag |= PARENB;
	else if (parity == 'O')
		tio.c_cflag |= PARENB | PARODD;
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		goto fail;
	tcflush(fd, TCIOFLUSH);
	return fd;
fail:
	err = errno;
	close(fd);
	return -err;
}

long rtu_silence_us(int baud)
{
	if (baud <= 0 || baud > 19200)
		return 1750;
	/* 11 bits a character. */
	return (long)(3.5 * 11 * 1000000.0 / baud);
}
