/*
 * Dead-lettering: a message that dies in a queue (rejected, expired,
 * dropped by a length limit) is republished to the queue's
 * x-dead-letter-exchange with the x-death history RabbitMQ writes.
 */
#ifndef WARREN_DEAD_LETTER_H
#define WARREN_DEAD_LETTER_H

struct queue;
struct message;

enum death_reason { DEATH_REJECTED, DEATH_EXPIRED, DEATH_MAXLEN,
    DEATH_DELIVERY_LIMIT };

/* Republish msg (the caller keeps its reference) if q has a DLX. */
void dead_letter(struct queue *q, struct message *msg, enum death_reason why);

#endif
