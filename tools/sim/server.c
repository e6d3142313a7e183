/*
 * The serving loop: one thread, poll() over either a serial device (RTU:
 * frames delimited by request length and inter-frame silence, CRC checked,
 * every slave id of the line answered by its own device) or a Modbus TCP
 * listener with up to SERVER_CLIENTS_MAX clients (MBAP header, unit id =
 * slave id). Faults decide per request whether to answer, corrupt or stay
 * silent; on TCP, which has no CRC, a "crc" fault garbles the reply's
 * transaction id and function code instead (a reply no client can decode). Called from main() only.
 */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agri/log.h"
#include "agri/util.h"
#include "rtu.h"

#define SERVER_CLIENTS_MAX 32
#define MBAP_LEN 7
#define TCP_FRAME_MAX (MBAP_LEN + 253)

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	int64_t deadline = util_mono_ms() + 1000;

	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (util_mono_ms() > deadline)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		poll(&p, 1, 50);
	}
	return 0;
}

/* Runs one PDU through the device for slave id; returns the reply PDU
 * length (0 and DEVICE_SILENT when there is nothing to send). */
static size_t answer(struct sim *s, struct device *d, const uint8_t *pdu,
		     size_t len, uint8_t *resp, enum device_action *act)
{
	int64_t now = util_mono_ms();
	size_t n = device_request(d, pdu, len, sim_time(s, now),
				  now - s->start_mono_ms, resp, 253, act);

	if (log_enabled(LOG_LVL_DEBUG))
		log_debug("sim", "request slave=%d fc=%u len=%zu reply=%zu action=%s",
			  d->slave, pdu[0], len, n,
			  *act == DEVICE_REPLY ? "reply" :
			  *act == DEVICE_SILENT ? "silent" : "corrupt");
	return n;
}

/* ---- RTU ------------------------------------------------------------- */

struct rtu_line {
	int fd;
	uint8_t buf[2 * RTU_FRAME_MAX];
	size_t n;
	int64_t last_rx_us;
	bool discard; /* drop bytes until the next silence */
	long silence_us;
};

static void rtu_frame(struct sim *s, struct rtu_line *l, const uint8_t *f,
		      size_t len)
{
	uint8_t out[RTU_FRAME_MAX];
	enum device_action act;
	struct device *d;
	uint16_t crc;
	size_t n;

	if (len < 4 || rtu_crc16(f, len - 2) != (uint16_t)(f[len - 2] | f[len - 1] << 8)) {
		log_debug("sim", "rtu frame dropped reason=crc len=%zu", len);
		return;
	}
	{
		struct device *at[4];
		size_t k = sim_devices_at(s, f[0], at, 4);

		if (!k) /* another slave's request, or a broadcast: stay quiet */
			return;
		d = at[0];
		n = answer(s, d, f + 1, len - 3, out + 1, &act);
		/* Two devices with one id both take the request and answer at
		 * once: the master gets a garbled frame. */
		for (size_t i = 1; i < k; i++) {
			uint8_t other[RTU_FRAME_MAX];
			enum device_action a2;

			(void)answer(s, at[i], f + 1, len - 3, other + 1, &a2);
			act = DEVICE_CORRUPT;
		}
		sim_take_new_ids(s);
	}
	if (act == DEVICE_SILENT || n == 0)
		return;
	out[0] = f[0];
	crc = rtu_crc16(out, n + 1);
	if (act == DEVICE_CORRUPT)
		crc ^= 0x5AA5;
	out[n + 1] = (uint8_t)(crc & 0xFF);
	out[n + 2] = (uint8_t)(crc >> 8);
	if (write_all(l->fd, out, n + 3))
		log_warn("sim", "rtu write failed err=\"%s\"", strerror(errno));
}

/* Takes every complete frame off the front of the buffer. */
static void rtu_drain(struct sim *s, struct rtu_line *l, bool silent)
{
	while (l->n > 0) {
		int want;
		if (l->discard) {
			if (!silent)
				return;
			l->n = 0;
			l->discard = false;
			return;
		}
		want = rtu_request_len(l->buf, l->n);
		if (want < 0) {
			/* Unknown length: the frame ends at the silence. */
			if (!silent)
				return;
			rtu_frame(s, l, l->buf, l->n);
			l->n = 0;
			return;
		}
		if (want == 0 || l->n < (size_t)want) {
			if (silent) /* a truncated frame */
				l->n = 0;
			return;
		}
		if (rtu_crc16(l->buf, (size_t)want - 2) !=
		    (uint16_t)(l->buf[want - 2] | l->buf[want - 1] << 8)) {
			/* Misaligned or damaged: resynchronise on silence. */
			l->discard = true;
			continue;
		}
		rtu_frame(s, l, l->buf, (size_t)want);
		memmove(l->buf, l->buf + want, l->n - (size_t)want);
		l->n -= (size_t)want;
	}
}

static int rtu_serve(struct sim *s, volatile sig_atomic_t *stop)
{
	struct rtu_line l = {0};
	int baud = s->baud, data_bits = 8, stop_bits = 1;
	char parity = s->parity;
	const struct agri_serial *ser = &s->devs[0].prof.serial;

	if (!baud)
		baud = ser->baud ? ser->baud : 9600;
	if (!parity)
		parity = ser->parity ? ser->parity : 'N';
	if (ser->data_bits)
		data_bits = ser->data_bits;
	if (ser->stop_bits)
		stop_bits = ser->stop_bits;
	l.fd = rtu_open(s->rtu_dev, baud, parity, data_bits, stop_bits);
	if (l.fd < 0) {
		log_error("sim", "cannot open serial device dev=%s err=\"%s\"",
			  s->rtu_dev, strerror(-l.fd));
		return l.fd;
	}
	/* On a pseudo-terminal bytes arrive in bursts: allow 5 ms. */
	l.silence_us = rtu_silence_us(baud);
	if (l.silence_us < 5000)
		l.silence_us = 5000;
	log_info("sim", "serving rtu dev=%s baud=%d parity=%c slaves=%zu speed=%g seed=%llu",
		 s->rtu_dev, baud, parity, s->n_slaves, s->speed,
		 (unsigned long long)s->seed);
	while (!*stop) {
		struct pollfd p = {.fd = l.fd, .events = POLLIN};
		int timeout = 200;
		if (l.n > 0)
			timeout = (int)(l.silence_us / 1000) + 1;
		int rc = poll(&p, 1, timeout);
		sim_plug_pending(s);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc > 0 && (p.revents & POLLIN)) {
			ssize_t n = read(l.fd, l.buf + l.n, sizeof(l.buf) - l.n);
			if (n > 0) {
				l.n += (size_t)n;
				l.last_rx_us = mono_us();
				rtu_drain(s, &l, false);
				if (l.n == sizeof(l.buf)) { /* noise: start over */
					l.n = 0;
					l.discard = false;
				}
			}
		} else if (rc > 0 && (p.revents & (POLLHUP | POLLERR))) {
			/* A pty whose master side is closed: wait for it. */
			util_sleep_ms(50);
		}
		if (l.n > 0 && mono_us() - l.last_rx_us >= l.silence_us)
			rtu_drain(s, &l, true);
	}
	close(l.fd);
	return 0;
}

/* ---- TCP -------------------------------------------------------------- */

struct tcp_client {
	int fd;
	uint8_t buf[TCP_FRAME_MAX];
	size_t n;
};

static int tcp_listen(const char *host, int port)
{
	struct addrinfo hints = {0}, *res = NULL, *ai;
	char sport[16];
	int fd = -1, one = 1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(sport, sizeof(sport), "%d", port);
	rc = getaddrinfo(host[0] ? host : NULL, sport, &hints, &res);
	if (rc)
		return -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0)
			break;
		rc = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd >= 0 ? fd : (rc ? rc : -EADDRNOTAVAIL);
}

/* Handles the complete frames in c's buffer; returns -1 to drop c. */
static int tcp_frames(struct sim *s, struct tcp_client *c)
{
	while (c->n >= MBAP_LEN) {
		size_t len = (size_t)(c->buf[4] << 8 | c->buf[5]);
		uint8_t out[TCP_FRAME_MAX];
		enum device_action act = DEVICE_REPLY;
		struct device *d;
		size_t n;

		if (len < 2 || len > 254 || c->buf[2] || c->buf[3])
			return -1; /* not Modbus: close */
		if (c->n < 6 + len)
			return 0;
		d = sim_device(s, c->buf[6]);
		if (!d && s->n_slaves == 1 && (c->buf[6] == 0 || c->buf[6] == 255))
			d = &s->devs[0];
		if (d) {
			n = answer(s, d, c->buf + MBAP_LEN, len - 1, out + MBAP_LEN, &act);
			sim_take_new_ids(s);
		} else {
			out[MBAP_LEN] = c->buf[MBAP_LEN] | 0x80;
			out[MBAP_LEN + 1] = MB_EX_GATEWAY_NO_RESPONSE;
			n = 2;
		}
		if (act != DEVICE_SILENT && n > 0) {
			memcpy(out, c->buf, 4);
			out[4] = (uint8_t)((n + 1) >> 8);
			out[5] = (uint8_t)((n + 1) & 0xFF);
			out[6] = c->buf[6];
			if (act == DEVICE_CORRUPT) { /* undecodable reply */
				out[0] ^= 0xA5;
				out[MBAP_LEN] ^= 0x40;
			}
			if (write_all(c->fd, out, MBAP_LEN + n))
				return -1;
		}
		memmove(c->buf, c->buf + 6 + len, c->n - 6 - len);
		c->n -= 6 + len;
	}
	return 0;
}

static int tcp_serve(struct sim *s, volatile sig_atomic_t *stop)
{
	struct tcp_client clients[SERVER_CLIENTS_MAX];
	struct pollfd pfd[SERVER_CLIENTS_MAX + 1];
	size_t nc = 0;
	int lfd = tcp_listen(s->tcp_host, s->tcp_port);

	if (lfd < 0) {
		log_error("sim", "cannot listen addr=%s:%d err=\"%s\"", s->tcp_host,
			  s->tcp_port, strerror(-lfd));
		return lfd;
	}
	log_info("sim", "serving tcp addr=%s:%d slaves=%zu speed=%g seed=%llu",
		 s->tcp_host, s->tcp_port, s->n_slaves, s->speed,
		 (unsigned long long)s->seed);
	while (!*stop) {
		pfd[0].fd = lfd;
		pfd[0].events = nc < SERVER_CLIENTS_MAX ? POLLIN : 0;
		for (size_t i = 0; i < nc; i++) {
			pfd[i + 1].fd = clients[i].fd;
			pfd[i + 1].events = POLLIN;
		}
		int rc = poll(pfd, nc + 1, 200);
		sim_plug_pending(s);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc <= 0)
			continue;
		/* Clients first: accepting reorders the array. */
		for (size_t i = nc; i-- > 0;) {
			struct tcp_client *c = &clients[i];
			bool drop = false;
			if (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t n = read(c->fd, c->buf + c->n, sizeof(c->buf) - c->n);
				if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
					drop = true;
				else if (n > 0) {
					c->n += (size_t)n;
					drop = tcp_frames(s, c) < 0;
				}
			}
			if (drop) {
				log_debug("sim", "tcp client closed fd=%d", c->fd);
				close(c->fd);
				clients[i] = clients[--nc];
			}
		}
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd >= 0) {
				clients[nc].fd = fd;
				clients[nc].n = 0;
				nc++;
				log_debug("sim", "tcp client accepted fd=%d", fd);
			}
		}
	}
	for (size_t i = 0; i < nc; i++)
		close(clients[i].fd);
	close(lfd);
	return 0;
}

int server_run(struct sim *s, volatile sig_atomic_t *stop)
{
	int rc = s->transport == SIM_RTU ? rtu_serve(s, stop) : tcp_serve(s, stop);

	for (size_t i = 0; i < s->n_slaves; i++) {
		const struct device *d = &s->devs[i];
		log_info("sim", "slave stats slave=%d profile=%s requests=%llu replies=%llu exceptions=%llu silent=%llu corrupt=%llu",
			 d->slave, d->prof.name, (unsigned long long)d->n_requests,
			 (unsigned long long)d->n_replies,
			 (unsigned long long)d->n_exceptions,
			 (unsigned long long)d->n_silent,
			 (unsigned long long)d->n_corrupt);
	}
	if (rc == 0)
		log_info("sim", "stopped");
	return rc;
}
