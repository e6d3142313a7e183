/*
 * Notification channels (docs/interfaces.md §5, docs/notify.md): how one outbox row
 * reaches people. A webhook gets the alert JSON as the body of a POST
 * (exactly agri_alert_encode's output); e-mail goes through SMTP (libcurl)
 * as a UTF-8 text/plain message, Vietnamese then English; SMS goes through
 * an HTTP gateway described by a URL and a body template with {to} and
 * {text}. Each channel is made from gateway.json's notify section and owns
 * a libcurl handle (connections are reused), so a channel is used by one
 * thread at a time: its outbox notifier thread.
 *
 * Delivery results: 0 delivered; -EPERM when the receiver refused this
 * message for good (webhook/SMS 400, 410, 413, 415, 422...; SMTP 5xx other
 * than authentication) so retrying cannot help; any other negative errno is
 * transient (connection refused or timed out, HTTP 5xx, 408, 429, 401,
 * 403, 404: a channel that is down or misconfigured, not a bad message)
 * and the outbox retries the same row.
 */
#ifndef GATEWAY_NOTIFY_H
#define GATEWAY_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

enum notify_kind { NOTIFY_WEBHOOK = 0, NOTIFY_SMTP, NOTIFY_SMS };

/* What a channel delivers: one outbox row (see outbox.h). Borrowed. */
struct notify_message {
	int64_t id;             /* the outbox row id */
	int64_t created_at_ms;  /* when it was staged (e-mail Date) */
	const char *alert_id;
	const char *event;      /* alert_event_name() */
	const char *payload;    /* the alert JSON (§5) */
	size_t payload_len;
	const char *text_en, *text_vi; /* the transition's messages */
	/* A person's message (the policy's): their name, their own address
	 * (e-mail, SMS number; "" = the channel's recipients) and the SMS
	 * form; alert_id is then the message's stable id. NULL/"" otherwise. */
	const char *person, *address, *sms;
	/* The episode key (outbox_episode_key; docs/ha.md), "" or NULL when
	 * none: a webhook's X-Agri-Episode header. */
	const char *episode;
};

struct notify_channel;

#define NOTIFY_CHANNELS_MAX (GW_WEBHOOKS_MAX + 2)
#define NOTIFY_TIMEOUT_MS_DEFAULT 10000

/*
 * Makes every channel of cfg->notify (webhooks, smtp, sms) into out[],
 * at most max. timeout_ms bounds one delivery attempt (0: default 10 s).
 * Returns the number made, or a negative errno (-ENOMEM; nothing is left
 * allocated).
 */
int notify_channels_new(const struct gateway_config *cfg, int64_t timeout_ms,
			struct notify_channel **out, size_t max);

/* The channel names of cfg (for rules_load). Returns how many, at most
 * max; names point into cfg. */
size_t notify_channel_names(const struct gateway_config *cfg,
			    const char **names, size_t max);

void notify_channel_free(struct notify_channel *ch);
const char *notify_channel_name(const struct notify_channel *ch);
enum notify_kind notify_channel_kind(const struct notify_channel *ch);

/*
 * Delivers m on ch (blocking, at most the channel's timeout a request).
 * Returns 0, -EPERM (refused for good) or another negative errno
 * (transient); err gets a one-line reason (never a secret). Calls to one
 * channel must not overlap; different channels may run in parallel.
 */
int notify_deliver(struct notify_channel *ch, const struct notify_message *m,
		   char *err, size_t err_len);

/* An outbox deliver function (outbox.h) over a struct notify_channel *. */
struct outbox_item;
int notify_outbox_deliver(void *ch, const struct outbox_item *it, char *err,
			  size_t err_len);

/*
 * Text renderers, exposed for tests. Each returns the length written
 * (NUL-terminated) or -ENOSPC.
 *  - e-mail: the whole RFC 5322 message (CRLF line ends, RFC 2047 subject,
 *    base64 UTF-8 body);
 *  - SMS text: "[MỨC ĐỘ] <vi>" (the severity in Vietnamese), cut on a
 *    character boundary to two UCS-2 segments (NOTIFY_SMS_UNITS_MAX UTF-16
 *    units: a phone shows one message, and the province pays two); a
 *    person's message: its own SMS form, cut the same way;
 *  - a template with {to} and {text} substituted and escaped for
 *    content_type (JSON when it contains "json", else percent-encoding).
 */
#define NOTIFY_SMS_TEXT_MAX 320
#define NOTIFY_SMS_UNITS_MAX 134 /* two concatenated UCS-2 segments */
/* SMS segments s takes: GSM-7 (160, or 153 a part) when every character is
 * in the basic set, else UCS-2 (70, or 67 a part). */
int notify_sms_segments(const char *s);
int notify_format_email(const char *from, const char *const *to, size_t n_to,
			const struct notify_message *m, char *buf, size_t len);
int notify_format_sms_text(const struct notify_message *m, char *buf,
			   size_t len);
int notify_expand_template(const char *tmpl, const char *content_type,
			   const char *to, const char *text, char *buf,
			   size_t len);

#endif
