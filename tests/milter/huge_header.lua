-- huge_header.lua - over-long From: and floods of strippable headers get the documented
-- 552 5.3.4 at once; a long header the milter does not read is fine. miltertest cannot send
-- a header over about 1 kB, so the runner sets max_address_header = 512 (a 20 kB From:
-- against the default 16k goes through Postfix in test_milter_from.py).
dofile(dir .. "/common.lua")

function main()
	local conn = open()
	local big = string.rep("a", 900)

	-- a long Subject: not ours to limit
	outbound_mail(conn, user, "<" .. user .. ">")
	expect(SMFIR_CONTINUE, "rcpt", mt.rcptto, conn, "<a@example.net>")
	expect(SMFIR_CONTINUE, "Subject", mt.header, conn, "Subject", big)
	expect(SMFIR_CONTINUE, "From", mt.header, conn, "From", user)
	expect(SMFIR_CONTINUE, "eoh", mt.eoh, conn)
	expect(SMFIR_CONTINUE, "eom", mt.eom, conn)

	-- From: over max_address_header: refused while headers arrive
	outbound_mail(conn, user, "<" .. user .. ">")
	expect(SMFIR_CONTINUE, "rcpt", mt.rcptto, conn, "<a@example.net>")
	expect(SMFIR_REPLYCODE, "huge From", mt.header, conn, "From",
	       "\"" .. big .. "\" <" .. user .. ">")
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
	check(got == SMFIR_REPLYCODE, "600 strippable headers were not refused")
	mt.disconnect(conn)
end

run(main)
