/* api-fcgi.h - the API's own FastCGI responder loop (one per worker process).
 *
 * Each worker waits in poll() on the shared listening socket and on every connection it
 * holds, so a connection nginx keeps open between requests (fastcgi_keep_conn with an
 * upstream keepalive pool) never ties a worker up while another connection waits. Requests
 * are answered one at a time, in the order they complete; before each, a worker hands the
 * idle connections it holds to the pool (handoff_fd), so none waits behind a slow request.
 */
#ifndef API_FCGI_H
#define API_FCGI_H

#include "mw-util.h"

#define API_FCGI_PARAMS_MAX (64 * 1024) /* all name-value pairs of one request */
#define API_FCGI_NPARAMS    256         /* name-value pairs in one request */
#define API_FCGI_CONNS      64          /* connections one worker holds at once */
#define API_FCGI_IDLE_S     300         /* a silent connection is closed after this */
#define API_FCGI_WRITE_S    30          /* an answer nobody reads is dropped after this */

/* One complete request: its parameters and its body (FCGI_STDIN). */
struct api_fcgi_request {
	char **names, **values; /* nparams NUL-terminated strings each (owned by the loop) */
	size_t nparams;
	const char *bad; /* non-NULL: malformed parameters; answer 400 with this, nothing else */
	unsigned char *body; /* NUL-terminated for convenience; body_len bytes */
	size_t body_len;
	bool body_too_large; /* more than max_body bytes came: body holds none of it */
};

/* api_fcgi_param - the value of parameter name, NULL when absent */
const char *api_fcgi_param(const struct api_fcgi_request *r, const char *name);

/* Called once per request with an empty out; appends the CGI answer (Status and headers,
   a blank line, the body). */
typedef void api_fcgi_handler(void *ctx, const struct api_fcgi_request *r, mw_str *out);

struct api_fcgi_conf {
	int listen_fd;
	/* -1/-1, or the pool's AF_UNIX datagram pair for idle connections: a worker sends
	   them on handoff_out, and waits for them on handoff_fd (the other end) */
	int handoff_fd, handoff_out;
	/* NULL, or a counter in memory every worker shares: how many wait in poll() now (a
	   hand-off happens only while one does) */
	unsigned *idle_workers;
	size_t max_body;
	const char *inet_peers; /* non-NULL: inet connections from elsewhere get 403 */
	api_fcgi_handler *handler;
	/* NULL, or called with ctx once the answers a read completed are written (or failed
	   to be): the handler's work that need not delay them (the API's request log line) */
	void (*answered)(void *ctx);
	void *ctx;
};

/* api_fcgi_serve - serve until a fatal error (returns -1 with error_r); SIGTERM ends the
   process while it waits in ppoll (whose mask alone lets it in), never while it answers */
int api_fcgi_serve(const struct api_fcgi_conf *conf, mw_error *error_r);

/* api_fcgi_feed - the parser alone, for tests and the fuzzer: feed bytes as one connection
   would receive them; answers (the records the loop would write) are appended to out.
   Returns 0, or -1 when the loop would close the connection (a protocol error, or the
   end of a request nginx did not ask to keep). state is created on first use (NULL) and
   freed by api_fcgi_feed_end. */
struct api_fcgi_conn;
int api_fcgi_feed(struct api_fcgi_conn **state, const struct api_fcgi_conf *conf, const void *data,
                  size_t len, mw_str *out);
void api_fcgi_feed_end(struct api_fcgi_conn **state);
/* api_fcgi_feed_retains - whether the bytes of needle are anywhere in the connection's
   buffers (received bytes, parameters, body, answer: their whole allocations), for the tests
   that check a request's and an answer's secrets are wiped once it is answered */
bool api_fcgi_feed_retains(const struct api_fcgi_conn *c, const void *needle, size_t n);

#endif
