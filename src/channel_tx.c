/*
 * Transactions (tx class).  In tx mode publishes are held on the channel
 * and acks/nacks/rejects mark their deliveries in the ledger (which then
 * no longer count as outstanding, as RabbitMQ collects them on arrival);
 * tx.commit routes the publishes, then settles the marked deliveries in
 * tag order; tx.rollback drops the publishes and unmarks (unacked messages
 * stay unacked, as in RabbitMQ).
 */
#include <stdlib.h>

#include "broker.h"
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

void chan_tx_discard(struct channel *ch)
{
	for (uint32_t i = 0; i < ch->n_tx_publishes; i++)
		msg_unref(ch->tx_publishes[i].msg);
	free(ch->tx_publishes);
	ch->tx_publishes = NULL;
	ch->n_tx_publishes = ch->cap_tx_publishes = 0;
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
	uint64_t ticket = 0;
	int rc;

	if ((rc = require_tx(ch, err)) != 0)
		return rc;
	for (uint32_t i = 0; i < ch->n_tx_publishes; i++) {
		struct tx_publish *p = &ch->tx_publishes[i];
		struct exchange *x = vhost_find_exchange(ch->conn->vh,
		    p->msg->exchange);

		/* An exchange deleted since the publish routes nowhere. */
		if (x)
			(void)chan_route(ch, x, p->msg, p->mandatory, &ticket);
		else if (p->mandatory)
			chan_send_return(ch, p->msg);
	}
	chan_tx_settle_marked(ch);
	chan_tx_discard(ch);
	if (ticket) {
		/*
		 * commit-ok only once the committed persistent messages are
		 * on disk; the connection reads nothing more until then, so
		 * what the client sends next is handled after the commit.
		 */
		ch->commit_ticket = ticket;
		ch->conn->commit_waits++;
		broker_store_wait(ch->conn->broker, ch);
		return 0;
	}
	conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}

bool chan_tx_synced(struct channel *ch, uint64_t synced)
{
	struct amqp_method ok = { .id = AMQP_tx_commit_ok };

	if (ch->commit_ticket == 0)
		return true;
	if (ch->commit_ticket > synced)
		return false;
	ch->commit_ticket = 0;
	if (ch->state == CHAN_OPEN)
		conn_send_method(ch->conn, ch->number, &ok);
	conn_resume_input(ch->conn);
	return true;
}

int chan_tx_rollback(struct channel *ch, const struct amqp_method *m,
    struct amqp_error *err)
{
	struct amqp_method ok = { .id = AMQP_tx_rollback_ok };
	int rc;

	if ((rc = require_tx(ch, err)) != 0)
		return rc;
	chan_tx_discard(ch);
	chan_tx_unmark(ch);
	conn_send_method(ch->conn, ch->number, &ok);
	return 0;
}
