/*
 * TLS server context.  As RabbitMQ: TLS 1.2 and 1.3 only; verify_peer asks
 * every client for a certificate chaining to ssl_options.cacertfile, and
 * fail_if_no_peer_cert makes one mandatory.  Renegotiation is off (a
 * client could otherwise make us redo handshakes at will).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "config.h"
#include "log.h"
#include "tls.h"

void tls_error_text(unsigned long code, char *buf, size_t len)
{
	if (code == 0)
		code = ERR_get_error();
	if (code == 0)
		snprintf(buf, len, "unknown TLS error");
	else
		ERR_error_string_n(code, buf, len);
	ERR_clear_error();
}

void tls_handshake_error_text(SSL *ssl, unsigned long code, char *buf,
    size_t len)
{
	long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	size_t used;

	tls_error_text(code, buf, len);
	used = strlen(buf);
	if (verify != X509_V_OK && used < len)
		snprintf(buf + used, len - used, " (peer certificate: %s)",
		    X509_verify_cert_error_string(verify));
}

/* "what FILE: reason" into err; always returns NULL for the caller. */
static SSL_CTX *fail(SSL_CTX *ctx, const char *what, const char *file,
    char *err, size_t errlen)
{
	char reason[256];

	tls_error_text(0, reason, sizeof(reason));
	snprintf(err, errlen, "%s %s: %s", what, file, reason);
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_server_context(const struct warren_config *cfg, char *err,
    size_t errlen)
{
	const struct tls_files f = { "ssl_options", cfg->ssl_certfile,
	    cfg->ssl_keyfile, cfg->ssl_cacertfile, cfg->ssl_verify_peer,
	    cfg->ssl_fail_if_no_peer_cert, cfg->ssl_versions,
	    cfg->ssl_ciphers };

	return tls_context(&f, err, errlen);
}

/*
 * ssl_options.versions and .ciphers: TLS_* names are TLS 1.3 suites
 * (SSL_CTX_set_ciphersuites), the rest TLS 1.2 ciphers; a list that
 * leaves a version offered without any cipher is refused.
 */
static bool set_protocol(SSL_CTX *ctx, const struct tls_files *f, char *err,
    size_t errlen)
{
	unsigned v = f->versions ? f->versions :
	    TLS_VERSION_1_2 | TLS_VERSION_1_3;
	char what[64], *list, *tok, *save;
	char v12[1024] = "", v13[1024] = "";
	bool ok = true;

	SSL_CTX_set_min_proto_version(ctx, v & TLS_VERSION_1_2 ?
	    TLS1_2_VERSION : TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, v & TLS_VERSION_1_3 ?
	    TLS1_3_VERSION : TLS1_2_VERSION);
	if (f->ciphers == NULL)
		return true;
	list = xstrdup(f->ciphers);
	for (tok = strtok_r(list, ":", &save); tok;
	    tok = strtok_r(NULL, ":", &save)) {
		char *into = strncmp(tok, "TLS_", 4) == 0 ? v13 : v12;
		size_t at = strlen(into);

		snprintf(into + at, 1024 - at, "%s%s", at ? ":" : "", tok);
	}
	free(list);
	snprintf(what, sizeof(what), "%s.ciphers", f->prefix);
	if ((v & TLS_VERSION_1_2) &&
	    (*v12 == '\0' || SSL_CTX_set_cipher_list(ctx, v12) != 1))
		ok = false;
	if ((v & TLS_VERSION_1_3) &&
	    (*v13 == '\0' || SSL_CTX_set_ciphersuites(ctx, v13) != 1))
		ok = false;
	if (!ok) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: no cipher it names is usable for "
		    "every TLS version offered (TLS 1.3 suites are named "
		    "TLS_*)", what);
		SSL_CTX_free(ctx);
	}
	return ok;
}

SSL_CTX *tls_context(const struct tls_files *f, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int mode = SSL_VERIFY_NONE;
	char what[64];

	if (ctx == NULL)
		return fail(NULL, "cannot create a TLS context", "", err, errlen);
	if (!set_protocol(ctx, f, err, errlen))
		return NULL;
	/* Most clients close without a TLS close_notify: a plain EOF, not
	 * an error (AMQP's framing already shows a cut-off message). */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	snprintf(what, sizeof(what), "%s.certfile", f->prefix);
	if (SSL_CTX_use_certificate_chain_file(ctx, f->certfile) != 1)
		return fail(ctx, what, f->certfile, err, errlen);
	snprintf(what, sizeof(what), "%s.keyfile", f->prefix);
	if (SSL_CTX_use_PrivateKey_file(ctx, f->keyfile,
	    SSL_FILETYPE_PEM) != 1)
		return fail(ctx, what, f->keyfile, err, errlen);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return fail(ctx, what, f->keyfile, err, errlen);
	if (f->cacertfile != NULL) {
		STACK_OF(X509_NAME) *names;

		snprintf(what, sizeof(what), "%s.cacertfile", f->prefix);
		if (SSL_CTX_load_verify_locations(ctx, f->cacertfile,
		    NULL) != 1 ||
		    (names = SSL_load_client_CA_file(f->cacertfile)) == NULL)
			return fail(ctx, what, f->cacertfile, err, errlen);
		/* The CAs a client may pick its certificate for. */
		SSL_CTX_set_client_CA_list(ctx, names);
	}
	if (f->verify_peer) {
		mode = SSL_VERIFY_PEER;
		if (f->fail_if_no_peer_cert)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	}
	SSL_CTX_set_verify(ctx, mode, NULL);
	return ctx;
}

bool tls_peer_user(SSL *ssl, bool common_name, char *out, size_t len)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	X509_NAME *subject;
	BIO *bio;
	bool ok = false;
	int n;

	if (cert == NULL)
		return false;
	subject = X509_get_subject_name(cert);
	if (SSL_get_verify_result(ssl) != X509_V_OK || subject == NULL)
		goto done;
	if (common_name) {
		ok = X509_NAME_get_text_by_NID(subject, NID_commonName, out,
		    (int)len) > 0;
		goto done;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		goto done;
	if (X509_NAME_print_ex(bio, subject, 0, XN_FLAG_RFC2253) >= 0 &&
	    (n = BIO_read(bio, out, (int)len - 1)) > 0) {
		out[n] = '\0';
		ok = true;
	}
	BIO_free(bio);
done:
	X509_free(cert);
	return ok;
}
