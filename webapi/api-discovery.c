/* api-discovery.c - mailwarden-api: what mail clients and sending MTAs fetch to find us.
 *
 * - GET /well-known/mta-sts.txt: the RFC 8461 policy (lib/mw-dnsrec.c), served for the
 *   host mta-sts.DOMAIN (nginx maps https://mta-sts.DOMAIN/.well-known/mta-sts.txt here);
 *   the Host must name one of [milter] local_domains.
 * - GET /autoconfig/mail/config-v1.1.xml?emailaddress=A: Thunderbird's autoconfig.
 * - POST /autodiscover/autodiscover.xml: Outlook's POX autodiscover (an XML request naming
 *   EMailAddress).
 * - POST /users/{username}/mobileconfig: an Apple configuration profile (plist) for a
 *   logged-in user; {"app_password": {...}} makes a fresh app password through
 *   api_apppw_create (same body, same checks: current_password) and puts it in the profile.
 *
 * The first three are public and take hostile input. The address is checked strictly
 * (a local part of atext and dots, at most 64 bytes; a domain we serve) and the answer does
 * not depend on whether such a user exists: no user is looked up, so the endpoints say
 * nothing about who has an account and cost no store query (rate limiting is nginx's
 * limit_req, see the sample). Everything echoed is XML-escaped; a request for a domain we do
 * not serve is 404. Hosts and ports come from [mailhost] (mw_dnsrec_services).
 *
 * Public: api_mta_sts, api_autoconfig, api_autodiscover, api_mobileconfig.
 * Diagnostics: a configuration that cannot say anything ([mailhost] mx_host unset) is 404
 * for the public endpoints (logged once per request at warning level) and 409 for the
 * profile.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-dnsrec.h"
#include "mw-log.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define LOCAL_PART_MAX 64
#define ADDRESS_MAX    (LOCAL_PART_MAX + 1 + MW_DNS_NAME_MAX)

/* xml_elem - "<name>escaped text</name>\n" with indent */
static void xml_elem(mw_str *out, int indent, const char *name, const char *text)
{
	(void)mw_str_appendf(out, "%*s<%s>", indent, "", name);
	(void)mw_str_append_markup(out, text, MW_MARKUP_XML);
	(void)mw_str_appendf(out, "</%s>\n", name);
}

/* atext - a character of an unquoted local part (RFC 5322 atext) or a dot */
static bool atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

/* address_check - a plain address user@domain whose domain we serve: address_r gets it
   with the domain normalised, domain_r the domain. Nothing else is accepted (no quotes,
   comments, display names, IP literals). */
static bool address_check(struct api_ctx *ctx, const char *in, size_t len, char *address_r,
                          char *domain_r)
{
	const char *at;
	size_t i, local;
	if (in == NULL || len == 0 || len > ADDRESS_MAX)
		return false;
	at = memchr(in, '@', len);
	if (at == NULL)
		return false;
	local = (size_t)(at - in);
	if (local == 0 || local > LOCAL_PART_MAX || in[0] == '.' || in[local - 1] == '.')
		return false;
	for (i = 0; i < local; i++)
		if (!atext(in[i]) || (in[i] == '.' && in[i + 1] == '.'))
			return false;
	if (len - local - 1 > MW_DNS_NAME_MAX || in[len - 1] == '.')
		return false;
	{
		char dom[MW_DNS_NAME_MAX + 1];
		memcpy(dom, at + 1, len - local - 1);
		dom[len - local - 1] = '\0';
		if (memchr(dom, '\0', len - local - 1) != NULL || strchr(dom, '@') != NULL ||
		    mw_dnsrec_domain(dom, domain_r, MW_DNS_NAME_MAX + 1, NULL) < 0 ||
		    !mw_dnsrec_domain_served(ctx->cfg, domain_r))
			return false;
	}
	memcpy(address_r, in, local);
	(void)snprintf(address_r + local, ADDRESS_MAX + 1 - local, "@%s", domain_r);
	return true;
}

/* services - [mailhost]'s client services; the preferred IMAP and SMTP one (implicit TLS
   first, RFC 8314), NULL when none is offered */
static int services(struct api_ctx *ctx, struct mw_dnsrec_service svc[MW_DNSREC_SERVICES],
                    const struct mw_dnsrec_service **imap_r,
                    const struct mw_dnsrec_service **smtp_r)
{
	mw_error err = {{0}};
	size_t i;
	*imap_r = *smtp_r = NULL;
	if (mw_dnsrec_services(ctx->cfg, svc, &err) < 0) {
		mw_warn("client autoconfig: %s", err.msg);
		return -1;
	}
	for (i = 0; i < MW_DNSREC_SERVICES; i++) {
		const struct mw_dnsrec_service **slot =
		    strcmp(svc[i].protocol, "imap") == 0 ? imap_r : smtp_r;
		if (svc[i].offered && *slot == NULL)
			*slot = &svc[i]; /* the table lists implicit TLS first */
	}
	return 0;
}

/* not_found - the one answer for anything we will not describe */
static void not_found(struct api_response *res)
{
	api_error(res, 404, "not_found", "no such resource");
}

/* api_mta_sts - GET /well-known/mta-sts.txt for Host mta-sts.DOMAIN */
void api_mta_sts(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char host[MW_DNS_NAME_MAX + 16], domain[MW_DNS_NAME_MAX + 1], id[24], *colon;
	mw_error err = {{0}};
	mw_str policy;
	if (req->nquery > 0 || req->host == NULL || mw_strlcpy(host, req->host, sizeof(host)) < 0) {
		not_found(res);
		return;
	}
	colon = strchr(host, ':');
	if (colon != NULL)
		*colon = '\0';
	if (mw_ascii_strncasecmp(host, "mta-sts.", 8) != 0 ||
	    mw_dnsrec_domain(host + 8, domain, sizeof(domain), NULL) < 0 ||
	    !mw_dnsrec_domain_served(ctx->cfg, domain)) {
		not_found(res);
		return;
	}
	mw_str_init(&policy, 0);
	if (mw_dnsrec_mta_sts_policy(ctx->cfg, &policy, id, &err) < 0) {
		mw_warn("mta-sts: %s", err.msg);
		mw_str_free(&policy);
		not_found(res);
		return;
	}
	api_raw(res, 200, "text/plain; charset=utf-8", &policy);
	mw_str_free(&policy);
}

/* api_autoconfig - GET /autoconfig/mail/config-v1.1.xml?emailaddress=A (Thunderbird) */
void api_autoconfig(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {"emailaddress", NULL};
	const char *addr_in = api_query_get(req, "emailaddress");
	char address[ADDRESS_MAX + 1], domain[MW_DNS_NAME_MAX + 1];
	struct mw_dnsrec_service svc[MW_DNSREC_SERVICES];
	const struct mw_dnsrec_service *imap, *smtp;
	const struct mw_dnsrec_service *in_order[MW_DNSREC_SERVICES];
	size_t i, n = 0;
	mw_str x;
	if (api_query_check(req, res, params) < 0)
		return;
	if (addr_in == NULL || !address_check(ctx, addr_in, strlen(addr_in), address, domain) ||
	    services(ctx, svc, &imap, &smtp) < 0 || (imap == NULL && smtp == NULL)) {
		not_found(res);
		return;
	}
	for (i = 0; i < MW_DNSREC_SERVICES; i++)
		if (svc[i].offered)
			in_order[n++] = &svc[i];
	mw_str_init(&x, 0);
	(void)mw_str_appends(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	                         "<clientConfig version=\"1.1\">\n");
	(void)mw_str_appends(&x, "  <emailProvider id=\"");
	(void)mw_str_append_markup(&x, domain, MW_MARKUP_XML);
	(void)mw_str_appends(&x, "\">\n");
	xml_elem(&x, 4, "domain", domain);
	xml_elem(&x, 4, "displayName", domain);
	xml_elem(&x, 4, "displayShortName", domain);
	for (i = 0; i < n; i++) {
		const struct mw_dnsrec_service *s = in_order[i];
		bool in = strcmp(s->protocol, "imap") == 0;
		char port[8];
		(void)snprintf(port, sizeof(port), "%u", s->port);
		(void)mw_str_appendf(&x, "    <%s type=\"%s\">\n",
		                     in ? "incomingServer" : "outgoingServer", s->protocol);
		xml_elem(&x, 6, "hostname", s->host);
		xml_elem(&x, 6, "port", port);
		xml_elem(&x, 6, "socketType", s->implicit_tls ? "SSL" : "STARTTLS");
		xml_elem(&x, 6, "authentication", "password-cleartext");
		/* Thunderbird fills in the address it asked with: nothing of it is echoed */
		xml_elem(&x, 6, "username", "%EMAILADDRESS%");
		(void)mw_str_appendf(&x, "    </%s>\n", in ? "incomingServer" : "outgoingServer");
	}
	(void)mw_str_appends(&x, "  </emailProvider>\n</clientConfig>\n");
	api_raw(res, 200, "application/xml; charset=utf-8", &x);
	mw_str_free(&x);
}

/* pox_address - the one <EMailAddress>...</EMailAddress> of an autodiscover request, its
   predefined entities decoded into out (ADDRESS_MAX + 1 bytes); the body must be NUL-free
   and name it exactly once. 0, -1 when it does not; *len_r 0 when the value is unusable
   (too long, another entity or a character reference: nothing an address needs). */
static int pox_address(const struct api_request *req, char *out, size_t *len_r)
{
	static const char open[] = "<EMailAddress>", close[] = "</EMailAddress>";
	static const struct {
		const char *ref;
		char c;
	} ents[] = {
	    {"&amp;", '&'}, {"&apos;", '\''}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}};
	const char *a, *b, *p;
	size_t n = 0, k;
	*len_r = 0;
	if (req->body == NULL || req->body_len == 0 || memchr(req->body, '\0', req->body_len))
		return -1;
	a = strstr(req->body, open);
	if (a == NULL || strstr(a + 1, open) != NULL)
		return -1;
	a += sizeof(open) - 1;
	b = strstr(a, close);
	if (b == NULL)
		return -1;
	for (p = a; p < b; n++) {
		if (n >= ADDRESS_MAX)
			return 0;
		if (*p != '&') {
			out[n] = *p++;
			continue;
		}
		for (k = 0; k < MW_N_ELEMENTS(ents); k++)
			if (strncmp(p, ents[k].ref, strlen(ents[k].ref)) == 0)
				break;
		if (k == MW_N_ELEMENTS(ents))
			return 0;
		out[n] = ents[k].c;
		p += strlen(ents[k].ref);
	}
	out[n] = '\0';
	*len_r = n;
	return 0;
}

/* pox_protocol - one <Protocol> of the autodiscover answer */
static void pox_protocol(mw_str *x, const char *type, const struct mw_dnsrec_service *s,
                         const char *address)
{
	char port[8];
	(void)snprintf(port, sizeof(port), "%u", s->port);
	(void)mw_str_appends(x, "      <Protocol>\n");
	xml_elem(x, 8, "Type", type);
	xml_elem(x, 8, "Server", s->host);
	xml_elem(x, 8, "Port", port);
	xml_elem(x, 8, "LoginName", address);
	xml_elem(x, 8, "DomainRequired", "off");
	xml_elem(x, 8, "SPA", "off");
	xml_elem(x, 8, "SSL", "on");
	xml_elem(x, 8, "Encryption", s->implicit_tls ? "SSL" : "TLS");
	xml_elem(x, 8, "AuthRequired", "on");
	(void)mw_str_appends(x, "      </Protocol>\n");
}

/* api_autodiscover - POST /autodiscover/autodiscover.xml (Outlook, POX) */
void api_autodiscover(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	char address[ADDRESS_MAX + 1], domain[MW_DNS_NAME_MAX + 1];
	struct mw_dnsrec_service svc[MW_DNSREC_SERVICES];
	const struct mw_dnsrec_service *imap, *smtp;
	char addr_in[ADDRESS_MAX + 1];
	size_t len = 0;
	mw_str x;
	if (req->nquery > 0) {
		not_found(res);
		return;
	}
	if (pox_address(req, addr_in, &len) < 0) {
		api_error(res, 400, "bad_request", "the body names no single EMailAddress");
		return;
	}
	if (!address_check(ctx, addr_in, len, address, domain) ||
	    services(ctx, svc, &imap, &smtp) < 0 || (imap == NULL && smtp == NULL)) {
		not_found(res);
		return;
	}
	mw_str_init(&x, 0);
	(void)mw_str_appends(
	    &x, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	        "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
	        "responseschema/2006\">\n"
	        "  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/"
	        "responseschema/2006a\">\n"
	        "    <Account>\n"
	        "      <AccountType>email</AccountType>\n"
	        "      <Action>settings</Action>\n");
	if (imap != NULL)
		pox_protocol(&x, "IMAP", imap, address);
	if (smtp != NULL)
		pox_protocol(&x, "SMTP", smtp, address);
	(void)mw_str_appends(&x, "    </Account>\n  </Response>\n</Autodiscover>\n");
	api_raw(res, 200, "application/xml; charset=utf-8", &x);
	mw_str_free(&x);
}

/* uuid - a random (version 4) UUID */
static void uuid(char out[37])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	(void)snprintf(out, 37,
	               "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0],
	               b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	               b[13], b[14], b[15]);
}

/* plist_kv - <key>k</key><string>v</string> */
static void plist_kv(mw_str *x, const char *key, const char *value)
{
	xml_elem(x, 6, "key", key);
	xml_elem(x, 6, "string", value);
}

/* plist_server - the Incoming/Outgoing keys of one service */
static void plist_server(mw_str *x, const char *side, const struct mw_dnsrec_service *s,
                         const char *address)
{
	char key[64];
	(void)snprintf(key, sizeof(key), "%sMailServerAuthentication", side);
	plist_kv(x, key, "EmailAuthPassword");
	(void)snprintf(key, sizeof(key), "%sMailServerHostName", side);
	plist_kv(x, key, s->host);
	(void)snprintf(key, sizeof(key), "%sMailServerPortNumber", side);
	xml_elem(x, 6, "key", key);
	(void)mw_str_appendf(x, "      <integer>%u</integer>\n", s->port);
	(void)snprintf(key, sizeof(key), "%sMailServerUseSSL", side);
	xml_elem(x, 6, "key", key);
	/* UseSSL true: TLS from the start; false: the client uses STARTTLS when offered */
	(void)mw_str_appendf(x, "      <%s/>\n", s->implicit_tls ? "true" : "false");
	(void)snprintf(key, sizeof(key), "%sMailServerUsername", side);
	plist_kv(x, key, address);
}

/* api_mobileconfig - POST /users/{username}/mobileconfig [{"app_password": {...}}] */
void api_mobileconfig(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const fields[] = {"app_password", NULL};
	char name[MW_USERNAME_MAX + 1], address[ADDRESS_MAX + 1], domain[MW_DNS_NAME_MAX + 1];
	char u1[37], u2[37], ident[ADDRESS_MAX + 16];
	struct mw_dnsrec_service svc[MW_DNSREC_SERVICES];
	const struct mw_dnsrec_service *imap, *smtp;
	json_t *apw = json_object_get(req->json, "app_password");
	char *password = NULL;
	mw_str x;
	if (api_fields_check(req, res, fields) < 0)
		return;
	if (mw_store_username_normalize(req->params[0], name, sizeof(name), NULL) < 0) {
		not_found(res);
		return;
	}
	if (!address_check(ctx, name, strlen(name), address, domain)) {
		api_error(res, 409, "not_configured",
		          "the user name is not an email address of a domain in [milter] "
		          "local_domains");
		return;
	}
	if (services(ctx, svc, &imap, &smtp) < 0 || imap == NULL || smtp == NULL) {
		api_error(res, 409, "not_configured",
		          "[mailhost] gives no IMAP and submission service (mx_host, "
		          "client_services)");
		return;
	}
	if (apw != NULL) {
		/* the existing app-password code, with its body and checks */
		json_t *outer = req->json;
		if (!json_is_object(apw)) {
			api_error(res, 422, "invalid_field",
			          "field app_password must be an object");
			return;
		}
		req->json = json_incref(apw);
		api_apppw_create(ctx, req, res);
		json_decref(req->json);
		req->json = outer;
		if (res->status != 201)
			return;
		{
			/* the answer of the app-password code is replaced by the profile: wipe its
			   copy of the password before jansson frees it */
			char *pw =
			    (char *)json_string_value(json_object_get(res->body, "password"));
			password = mw_strdup(pw != NULL ? pw : "");
			if (pw != NULL)
				mw_memzero(pw, strlen(pw));
		}
	}
	uuid(u1);
	uuid(u2);
	(void)snprintf(ident, sizeof(ident), "mailwarden.%s", address);
	mw_str_init(&x, 0);
	(void)mw_str_appends(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	                         "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	                         "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
	                         "<plist version=\"1.0\">\n<dict>\n"
	                         "  <key>PayloadContent</key>\n  <array>\n    <dict>\n");
	plist_kv(&x, "EmailAccountDescription", address);
	plist_kv(&x, "EmailAccountType", "EmailTypeIMAP");
	plist_kv(&x, "EmailAddress", address);
	plist_server(&x, "Incoming", imap, address);
	if (password != NULL)
		plist_kv(&x, "IncomingPassword", password);
	plist_server(&x, "Outgoing", smtp, address);
	xml_elem(&x, 6, "key", "OutgoingPasswordSameAsIncomingPassword");
	(void)mw_str_appends(&x, "      <true/>\n");
	plist_kv(&x, "PayloadDisplayName", address);
	plist_kv(&x, "PayloadIdentifier", ident);
	plist_kv(&x, "PayloadType", "com.apple.mail.managed");
	plist_kv(&x, "PayloadUUID", u1);
	xml_elem(&x, 6, "key", "PayloadVersion");
	(void)mw_str_appends(&x, "      <integer>1</integer>\n    </dict>\n  </array>\n");
	xml_elem(&x, 2, "key", "PayloadDisplayName");
	(void)mw_str_appends(&x, "  <string>Mail: ");
	(void)mw_str_append_markup(&x, address, MW_MARKUP_XML);
	(void)mw_str_appends(&x, "</string>\n");
	xml_elem(&x, 2, "key", "PayloadIdentifier");
	xml_elem(&x, 2, "string", ident);
	xml_elem(&x, 2, "key", "PayloadType");
	xml_elem(&x, 2, "string", "Configuration");
	xml_elem(&x, 2, "key", "PayloadUUID");
	xml_elem(&x, 2, "string", u2);
	xml_elem(&x, 2, "key", "PayloadVersion");
	(void)mw_str_appends(&x, "  <integer>1</integer>\n</dict>\n</plist>\n");
	if (password != NULL) {
		mw_memzero(password, strlen(password));
		free(password);
	}
	api_raw(res, 200, "application/x-apple-aspen-config", &x);
	(void)snprintf(res->disposition, sizeof(res->disposition),
	               "attachment; filename=\"mail.mobileconfig\"");
	mw_str_free(&x);
}
