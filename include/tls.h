/*
 * TLS for the AMQPS listener: one server context built from the
 * ssl_options.* keys, and the error text OpenSSL leaves behind.
 */
#ifndef WARREN_TLS_H
#define WARREN_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct warren_config;

/*
 * The server context for cfg (certificate, key, client verification), or
 * NULL with a message naming the file and OpenSSL's reason in err.
 */
SSL_CTX *tls_server_context(const struct warren_config *cfg, char *err,
    size_t errlen);

/* The oldest error on this thread's OpenSSL queue, as text (queue cleared). */
void tls_error_text(unsigned long code, char *buf, size_t len);

#endif
