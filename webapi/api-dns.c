/* api-dns.c - mailwarden-api: the DNS records a mail domain should publish (admin).
 *
 * GET /domains/{domain}/dns[?check=1]: MX, SPF, every active DKIM key's TXT, DMARC,
 * MTA-STS, TLS-RPT and the client SRV records, as zone-file lines and fields
 * (lib/mw-dnsrec.c builds them from [mailhost] and the store's DKIM keys, read only). With
 * check=1 each is resolved through the configured resolver ([milter] dns_servers) and
 * reported ok / missing / different (with the difference) / error. mailwardenctl dns prints
 * this answer (--api) or the same object built locally.
 *
 * Public: api_domain_dns.
 * Diagnostics: a configuration that cannot give records is 409 not_configured (naming
 * the key); a store failure 503; a resolver that cannot be set up 503.
 */
#include "mw-build.h"
#include "api-common.h"
#include "mw-dnsrec.h"
#include "mw-log.h"

/* api_domain_dns - GET /domains/{domain}/dns?check=0|1 */
void api_domain_dns(struct api_ctx *ctx, struct api_request *req, struct api_response *res)
{
	static const char *const params[] = {"check", NULL};
	char domain[MW_DNS_NAME_MAX + 1];
	struct mw_dnsrec_set set;
	mw_error err = {{0}};
	long long check;
	mw_dns *dns;
	if (api_query_check(req, res, params) < 0 ||
	    api_query_int(req, res, "check", 0, 0, 1, &check) < 0)
		return;
	if (mw_dnsrec_domain(req->params[0], domain, sizeof(domain), &err) < 0) {
		api_error(res, 404, "not_found", "not a domain name");
		return;
	}
	if (mw_dnsrec_build(ctx->cfg, ctx->store, domain, &set, &err) < 0) {
		if (err.msg[0] == '[')
			api_error(res, 409, "not_configured", "%s", err.msg);
		else
			api_store_error(res, "listing DKIM keys", &err);
		return;
	}
	if (check) {
		dns = mw_dnsrec_resolver(ctx->cfg, &err);
		if (dns == NULL) {
			mw_error_log("dns check: %s", err.msg);
			api_error(res, 503, "resolver_unavailable", "the resolver cannot be used");
			mw_dnsrec_set_free(&set);
			return;
		}
		(void)mw_dnsrec_check(&set, dns, &err);
		mw_dns_free(&dns);
	}
	api_ok(res, 200, mw_dnsrec_json(&set));
	mw_dnsrec_set_free(&set);
}
