/*
 * TLS for the AMQPS listener: one server context built from the
 * ssl_options.* keys, and the error text OpenSSL leaves behind.
 */
#ifndef WARREN_TLS_H
#define WARREN_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct warren_config;

/* The files and checks of one TLS listener. */
struct tls_files {
	const char *prefix;		/* of its config keys: "ssl_options" */
	const char *certfile, *keyfile, *cacertfile;	/* cacertfile: NULL */
	bool verify_peer, fail_if_no_peer_cert;
	unsigned versions;		/* TLS_VERSION_* bits; 0: 1.2 and 1.3 */
	const char *ciphers;		/* OpenSSL's list; NULL: its default */
};

/*
 * A server context (TLS 1.2 and 1.3; certificate, key, client
 * verification), or NULL with a message naming the key, the file and
 * OpenSSL's reason in err.
 */
SSL_CTX *tls_context(const struct tls_files *f, char *err, size_t errlen);
/* The AMQPS listener's, from the ssl_options.* keys. */
SSL_CTX *tls_server_context(const struct warren_config *cfg, char *err,
    size_t errlen);

/*
 * The user a verified client certificate names: its subject's common
 * name, or the whole subject as an RFC 4514 string ("CN=app,O=example").
 * False without a certificate, or if it did not verify.
 */
bool tls_peer_user(SSL *ssl, bool common_name, char *out, size_t len);

/* The oldest error on this thread's OpenSSL queue, as text (queue cleared). */
void tls_error_text(unsigned long code, char *buf, size_t len);

/* tls_error_text for a failed handshake on ssl: when the peer's certificate
 * failed verification, why (e.g. "certificate has expired") is appended,
 * since OpenSSL's error queue says only "certificate verify failed". */
void tls_handshake_error_text(SSL *ssl, unsigned long code, char *buf,
    size_t len);

#endif
