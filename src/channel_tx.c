/*
 * Transactions (tx class).  In tx mode publishes and acks are held on the
 * channel; tx.commit routes the publishes and applies the acks in the
 * order they came, tx.rollback drops them (unacked messages stay unacked,
 * as in RabbitMQ).
 */
#include <stdlib.h>

#include "channel.h"
#include "exchange.h"
#include "log.h"
#include "message.h"
#include "method.h"
#include "vhost.h"

int chan_tx_select(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_tx_select_ok };

	if (ch->confirm_mode)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "cannot switch from confirm to tx mode");
	ch->tx_mode = true;
	conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}

void chan_tx_hold(struct channel *ch, struct message *msg, bool mandatory)
{
	if (ch->n_tx_publishes == ch->cap_tx_publishes) {
		ch->cap_tx_publishes = ch->cap_tx_publishes ?
		    ch->cap_tx_publishes * 2 : 8;
		ch->tx_publishes = xrealloc(ch->tx_publishes,
		    ch->cap_tx_publishes * sizeof(*ch->tx_publishes));
	}
	ch->tx_publishes[ch->n_tx_publishes++] =
	    (struct tx_publish){ msg_ref(msg), mandatory };
}

void chan_tx_hold_settle(struct channel *ch, uint64_t tag, bool multiple,
    enum settle_how how)
{
	/* "Everything outstanding" means now, not at commit time. */
	if (multiple && tag == 0 && (tag = chan_last_unsettled_tag(ch)) == 0)
		return;
	if (ch->n_tx_settles == ch->cap_tx_settles) {
		ch->cap_tx_settles = ch->cap_tx_settles ?
		    ch->cap_tx_settles * 2 : 8;
		ch->tx_settles = xrealloc(ch->tx_settles,
		    ch->cap_tx_settles * sizeof(*ch->tx_settles));
	}
	ch->tx_settles[ch->n_tx_settles++] =
	    (struct tx_settle){ tag, multiple, how };
}

void chan_tx_discard(struct channel *ch)
{
	for (uint32_t i = 0; i < ch->n_tx_publishes; i++)
		msg_unref(ch->tx_publishes[i].msg);
	free(ch->tx_publishes);
	free(ch->tx_settles);
	ch->tx_publishes = NULL;
	ch->tx_settles = NULL;
	ch->n_tx_publishes = ch->cap_tx_publishes = 0;
	ch->n_tx_settles = ch->cap_tx_settles = 0;
}

static int require_tx(struct channel *ch, struct amqp_error *err)
{
	if (!ch->tx_mode)
		return amqp_fail(err, AMQP_PRECONDITION_FAILED,
		    "channel is not transactional");
	return 0;
}

int chan_tx_commit(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_tx_commit_ok };
	int rc = 0;

	if ((rc = require_tx(ch, err)) != 0)
		return rc;
	for (uint32_t i = 0; i < ch->n_tx_publishes; i++) {
		struct tx_publish *p = &ch->tx_publishes[i];
		struct exchange *x = vhost_find_exchange(ch->conn->vh,
		    p->msg->exchange);

		/* An exchange deleted since the publish routes nowhere. */
		if (x)
			(void)chan_route(ch, x, p->msg, p->mandatory);
		else if (p->mandatory)
			chan_send_return(ch, p->msg);
	}
	for (uint32_t i = 0; i < ch->n_tx_settles && rc == 0; i++) {
		struct tx_settle *s = &ch->tx_settles[i];

		rc = chan_settle(ch, s->tag, s->multiple, s->how, err);
	}
	chan_tx_discard(ch);
	if (rc == 0)
		conn_send_method(ch->conn, ch->number, &ok);
	return rc;
}

int chan_tx_rollback(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_tx_rollback_ok };
	int rc;

	if ((rc = require_tx(ch, err)) != 0)
		return rc;
	chan_tx_discard(ch);
	conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}
