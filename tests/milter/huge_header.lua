-- huge_header.lua - over-long From: and floods of strippable headers get the documented
-- 552 5.3.4: at once, or (the milter takes headers without a reply, SMFIP_NR_HDR, which
-- miltertest offers) at the end of the headers, or (end of headers and body without a reply
-- too, SMFIP_NR_EOH/NR_BODY) at the end of the message; a long header the milter does not
-- read is fine. miltertest cannot send
-- a header over about 1 kB, so the runner sets max_address_header = 512 (a 20 kB From:
-- against the default 16k goes through Postfix in test_milter_from.py).
dofile(dir .. "/common.lua")

-- refused_by_eom - after headers taken without a reply: the refusal comes at the end of the
-- message (end of headers and body take no reply either), with its 552 5.3.4 text
function refused_by_eom(conn, what, text)
	-- miltertest offers NR_EOH and NR_BODY, so the milter takes both without a reply
	-- (miltertest answers CONTINUE for it) and the refusal must come at the end
	expect(SMFIR_CONTINUE, what .. ": eoh (no reply)", mt.eoh, conn)
	expect(SMFIR_CONTINUE, what .. ": body (no reply)", mt.bodystring, conn, "body\r\n")
	expect(SMFIR_REPLYCODE, what .. ": eom", mt.eom, conn)
	check(mt.eom_check(conn, MT_SMTPREPLY, "552", "5.3.4", text),
	      what .. ": not 552 5.3.4 " .. text)
end

function main()
	local conn = open()
	local big = string.rep("a", 900)

	-- a long Subject: not ours to limit
	user_mail(conn)
	expect(SMFIR_CONTINUE, "Subject", mt.header, conn, "Subject", big)
	expect(SMFIR_CONTINUE, "From", mt.header, conn, "From", user)
	expect(SMFIR_CONTINUE, "eoh", mt.eoh, conn)
	expect(SMFIR_CONTINUE, "eom", mt.eom, conn)

	-- From: over max_address_header: refused by the end of the headers
	user_mail(conn)
	check(mt.header(conn, "From", "\"" .. big .. "\" <" .. user .. ">") == nil,
	      "huge From: call failed")
	if mt.getreply(conn) ~= SMFIR_REPLYCODE then
		expect(SMFIR_CONTINUE, "Subject after huge From", mt.header, conn, "Subject", "s")
		refused_by_eom(conn, "huge From", "From: header too long")
	end
	check(mt.abort(conn) == nil, "abort failed")

	-- inbound: 600 forged X-Mailwarden-* headers (over the 512 we delete)
	inbound_mail(conn, "<x@example.net>")
	expect(SMFIR_CONTINUE, "rcpt", mt.rcptto, conn, "<a@example.net>")
	local got
	for i = 1, 600 do
		check(mt.header(conn, "X-Mailwarden-Spam", "no") == nil, "header call failed")
		got = mt.getreply(conn)
		if got ~= SMFIR_CONTINUE then
			check(i > 512, "refused after only " .. i .. " headers")
			break
		end
	end
	if got == SMFIR_CONTINUE then
		refused_by_eom(conn, "600 strippable headers", "too many headers to remove")
	else
		check(got == SMFIR_REPLYCODE, "600 strippable headers were not refused")
	end
	mt.disconnect(conn)
end

run(main)
