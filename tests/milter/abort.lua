-- abort.lua - a message aborted half-way leaves nothing behind: the next message on the
-- same connection starts clean (one From: header, no strippable headers carried over).
dofile(dir .. "/common.lua")

function main()
	local conn = open()
	user_mail(conn)
	expect(SMFIR_CONTINUE, "From", mt.header, conn, "From", "<evil@x.org>")
	expect(SMFIR_CONTINUE, "X-Mailwarden-Spam", mt.header, conn, "X-Mailwarden-Spam", "no")
	check(mt.abort(conn) == nil, "abort failed")

	-- second message: one allowed From: (a leftover first From: would make it "2 From:")
	outbound_mail(conn, user, "<" .. user .. ">")
	expect(SMFIR_CONTINUE, "rcpt", mt.rcptto, conn, "<b@example.net>")
	expect(SMFIR_CONTINUE, "From", mt.header, conn, "From", "Me <" .. user .. ">")
	expect(SMFIR_CONTINUE, "eoh", mt.eoh, conn)
	expect(SMFIR_CONTINUE, "eom", mt.eom, conn)
	check(not mt.eom_check(conn, MT_HDRDELETE, "X-Mailwarden-Spam"),
	      "a header of the aborted message was deleted in the next one")

	-- and after an abort right after MAIL FROM, a refused sender is still refused
	outbound_mail(conn, user, "<" .. user .. ">")
	check(mt.abort(conn) == nil, "abort failed")
	outbound_mail(conn, user, "<evil@x.org>", SMFIR_REPLYCODE)
	mt.disconnect(conn)
end

run(main)
