/* api-qr.c - mailwarden-api: QR codes as SVG (libqrencode), for phones to scan.
 *
 * The web page shows the otpauth:// URI of a TOTP enrolment and a new app password as a
 * QR code. It is drawn here, on the server, so the page needs no QR library and the secret
 * never goes to another site: an SVG of one <path> of unit squares (no text, no script, no
 * reference to anything), which the page shows as an <img> from a data: URI. Error
 * correction level M, 8-bit mode, a quiet zone of 4 modules. Input longer than
 * API_QR_TEXT_MAX is refused (NULL).
 *
 * Public: api_qr_svg.
 */
#include "mw-build.h"
#include "api-common.h"

#include <qrencode.h>
#include <string.h>

#define QR_QUIET 4

/* api_qr_svg - the QR code of text as an SVG document (a JSON string), NULL on failure */
json_t *api_qr_svg(const char *text)
{
	QRcode *qr;
	mw_str svg;
	json_t *out;
	int x, y, w;
	if (text == NULL || strlen(text) > API_QR_TEXT_MAX)
		return NULL;
	qr = QRcode_encodeString8bit(text, 0, QR_ECLEVEL_M);
	if (qr == NULL)
		return NULL;
	w = qr->width;
	mw_str_init(&svg, 0);
	(void)mw_str_appendf(&svg,
	                     "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
	                     "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" "
	                     "fill=\"#fff\"/><path fill=\"#000\" d=\"",
	                     w + 2 * QR_QUIET, w + 2 * QR_QUIET, w + 2 * QR_QUIET,
	                     w + 2 * QR_QUIET);
	for (y = 0; y < w; y++)
		for (x = 0; x < w; x++)
			if (qr->data[y * w + x] & 1)
				(void)mw_str_appendf(&svg, "M%d %dh1v1h-1z", x + QR_QUIET,
				                     y + QR_QUIET);
	(void)mw_str_appends(&svg, "\"/></svg>");
	QRcode_free(qr);
	out = json_string(mw_str_c(&svg));
	mw_memzero(svg.buf, svg.len);
	mw_str_free(&svg);
	return out;
}
